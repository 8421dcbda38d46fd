#!/usr/bin/env node
// The `vmm` command. Commands are compiled to dist/ by `npm run build` (run by `npm install`), and
// oclif.manifest.json lets oclif find a command without importing the others.
import { execute } from '@oclif/core/execute';

await execute({ dir: import.meta.url });
