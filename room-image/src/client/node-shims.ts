// Injected by esbuild into every client module that references these Node globals (simple-peer's
// readable-stream dependency does).
import { Buffer } from 'buffer';
import process from 'process';

export { Buffer, process };
