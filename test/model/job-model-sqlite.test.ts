/**
 * The model-based suite on SQLite (its own file, so it runs beside job-model.test.ts).
 */
import { defineStoreSuites } from './suite.js';

defineStoreSuites((name) => name === 'sqlite');
