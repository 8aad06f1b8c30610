#!/usr/bin/env node
// The `fleet` command on a checkout: registers tsx's loader in this process (no build
// step, no second process), then runs the TypeScript CLI in adapters/cli/fleet.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../adapters/cli/fleet.ts');
await main(process.argv.slice(2));
