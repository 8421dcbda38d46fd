// What a custom plugin gets when it imports 'vmm': the API module the host process already loaded
// (registry.ts puts it here before loading any plugin file), so plugins and the core share classes.
'use strict';
module.exports = globalThis[Symbol.for('vmm:api')];
