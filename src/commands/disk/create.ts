// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class DiskCreate extends Command {
  static override summary = 'Create a disk image with an empty FAT file system.';
  static override description = `The FAT type follows from the size unless --fat says otherwise (as mkfs.fat does).
An existing file is only replaced with --force.`;

  static override examples = [
    '<%= config.bin %> disk create disk.img --size 64M',
    '<%= config.bin %> disk create floppy.img --size 1440K --fat 12 --label BOOT',
  ];

  static override args = {
    image: Args.string({ description: 'image file to create', required: true }),
  };

  static override flags = {
    size: Flags.string({
      required: true,
      helpValue: 'SIZE',
      description: 'image size: bytes or with a unit (K, M, G binary; KB, MB, GB decimal)',
    }),
    fat: Flags.option({ options: ['12', '16', '32'] as const, description: 'FAT type (default: by size)' })(),
    label: Flags.string({ helpValue: 'LABEL', description: 'volume label (up to 11 characters)' }),
    force: Flags.boolean({ char: 'f', description: 'replace an existing file' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(DiskCreate);
    const { runDiskCreate } = await import('../../cli-lib/disk.js');
    process.exitCode = await runDiskCreate({
      image: args.image,
      size: flags.size,
      fat: flags.fat === undefined ? undefined : (Number(flags.fat) as 12 | 16 | 32),
      label: flags.label,
      force: flags.force,
    });
  }
}
