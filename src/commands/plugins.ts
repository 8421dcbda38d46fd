// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';
import * as Flags from '@oclif/core/flags';

export default class Plugins extends Command {
  static override summary = 'List the built-in plugins, or show one plugin’s settings.';
  static override description = `Without NAME: every registered plugin, what it provides, and what it is.
With NAME: its description, what it provides, needs and wants, and each setting with its type,
default and description (the same schema that validates machine files).`;

  static override examples = ['<%= config.bin %> plugins', '<%= config.bin %> plugins uart16550'];

  static override args = {
    name: Args.string({ description: 'plugin name' }),
  };

  static override flags = {
    json: Flags.boolean({ description: 'print as JSON on stdout' }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Plugins);
    const { runPlugins } = await import('../cli-lib/commands.js');
    process.exitCode = await runPlugins({ name: args.name, json: flags.json });
  }
}
