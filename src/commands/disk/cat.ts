// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class DiskCat extends Command {
  static override summary = 'Write a file of a FAT disk image to stdout.';
  static override description = 'The bytes as they are in the image (redirect to save them).';

  static override examples = ['<%= config.bin %> disk cat disk.img /nimbos.bin > nimbos.bin'];

  static override args = {
    image: Args.string({ description: 'FAT disk image', required: true }),
    path: Args.string({ description: 'file in the image', required: true }),
  };

  static override flags = {
    partition: Flags.integer({
      min: 0,
      max: 3,
      description: 'MBR partition slot (default: the first FAT one)',
    }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(DiskCat);
    const { runDiskCat } = await import('../../cli-lib/disk.js');
    process.exitCode = await runDiskCat({ image: args.image, path: args.path, partition: flags.partition });
  }
}
