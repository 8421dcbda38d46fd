// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class DiskLs extends Command {
  static override summary = 'List a directory of a FAT disk image.';
  static override description =
    'One line per entry: the size (or <DIR>) and the long name; directories end in /.';

  static override examples = [
    '<%= config.bin %> disk ls disk.img',
    '<%= config.bin %> disk ls disk.img /boot',
  ];

  static override args = {
    image: Args.string({ description: 'FAT disk image', required: true }),
    path: Args.string({ description: 'directory or file in the image (default /)' }),
  };

  static override flags = {
    partition: Flags.integer({
      min: 0,
      max: 3,
      description: 'MBR partition slot (default: the first FAT one)',
    }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(DiskLs);
    const { runDiskLs } = await import('../../cli-lib/disk.js');
    process.exitCode = await runDiskLs({ image: args.image, path: args.path, partition: flags.partition });
  }
}
