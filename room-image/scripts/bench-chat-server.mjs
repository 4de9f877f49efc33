// The room server as bench-chat.mjs's encoding comparison runs it (BENCH_SERVER=scripts/bench-chat-server.mjs):
// the built server (dist/) with the room's configuration from the environment, plus
//   BENCH_MSGPACK_PARSER=<path of socket.io-msgpack-parser's entry>  socket.io's msgpack parser
//   BENCH_DEFLATE=1                                                  per-message deflate (threshold 1 KiB)
import { loadConfig } from '../dist/server/config.js';
import { jsonLogger as log, startServer } from '../dist/server/server.js';

const parser = process.env.BENCH_MSGPACK_PARSER ? await import(process.env.BENCH_MSGPACK_PARSER) : undefined;
const config = loadConfig(process.env);
const server = await startServer(config, {
  log,
  socketIo: {
    ...(parser ? { parser } : {}),
    perMessageDeflate: process.env.BENCH_DEFLATE === '1' ? { threshold: 1024 } : false,
  },
});
log('info', 'room server listening', { port: server.port, metricsPort: server.metricsPort });
