// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class DiskAdd extends Command {
  static override summary = 'Copy host files (and directories, recursively) into a FAT disk image.';
  static override description =
    'Existing files of the same name are replaced. Prints the image paths written.';

  static override examples = [
    '<%= config.bin %> disk add disk.img rvm-bios.bin nimbos.bin',
    '<%= config.bin %> disk add disk.img build/ --to /boot',
  ];

  static override strict = false;

  static override args = {
    image: Args.string({ description: 'FAT disk image', required: true }),
    file: Args.string({ description: 'host files or directories to copy (one or more)', required: true }),
  };

  static override flags = {
    to: Flags.string({
      helpValue: 'DIR',
      description: 'directory in the image (created when missing; default /)',
    }),
    partition: Flags.integer({
      min: 0,
      max: 3,
      description: 'MBR partition slot (default: the first FAT one)',
    }),
  };

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(DiskAdd);
    const files = (argv as string[]).slice(1);
    const { runDiskAdd } = await import('../../cli-lib/disk.js');
    process.exitCode = await runDiskAdd({
      image: args.image,
      files,
      to: flags.to,
      partition: flags.partition,
    });
  }
}
