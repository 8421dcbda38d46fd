// `node --import ./scripts/register-ts.mjs file.ts`: run TypeScript sources directly (bench, scripts)
// through jiti's ESM loader hooks, which also map `./x.js` imports to `./x.ts`.
import 'jiti/register';
