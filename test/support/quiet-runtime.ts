import { DefaultLogger, Runtime } from '@temporalio/worker';

// Worker state changes are noise in test output; warnings and errors still show. Imported by every
// test support module that makes workers: a module runs once per process, and so does this.
Runtime.install({ logger: new DefaultLogger('WARN') });
