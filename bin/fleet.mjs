#!/usr/bin/env node
// The `fleet` command: runs the compiled CLI in dist/ (`npm run build`, which `npm install`
// runs through `prepare` in a checkout; an installed package ships dist/). Plain
// JavaScript, no TypeScript loader: tsx is a development tool only.
let cli;
try {
  cli = await import('../dist/adapters/cli/main.js');
} catch (e) {
  if (e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes('dist/adapters/cli/main.js')) {
    process.stderr.write('fleet: this checkout is not built yet: run `npm run build`\n');
    process.exit(1);
  }
  throw e;
}
await cli.main(process.argv.slice(2));
