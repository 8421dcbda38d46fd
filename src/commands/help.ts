// Subpath imports: oclif's index would load all of oclif (help, ux, ...) at every start.
import * as Args from '@oclif/core/args';
import { Command } from '@oclif/core/command';

export default class HelpCommand extends Command {
  static override summary = 'Show help for vmm or for one command.';
  static override description = 'The same text as `vmm COMMAND --help`.';
  static override examples = ['<%= config.bin %> help up', '<%= config.bin %> help disk create'];
  static override strict = false;

  static override args = {
    command: Args.string({ description: 'command (and subcommand) to explain' }),
  };

  async run(): Promise<void> {
    const { argv } = await this.parse(HelpCommand);
    const { Help } = await import('@oclif/core/help');
    await new Help(this.config, { all: false }).showHelp(argv as string[]);
  }
}
