// The serving log's Parquet converter (see converter.ts): a child process at low priority that
// runs the DuckDB statements it is sent, one at a time, and answers each.
import { DuckDBInstance } from '@duckdb/node-api';

const instance = await DuckDBInstance.create(':memory:', { threads: '1', memory_limit: '256MB' });
const connection = await instance.connect();
await connection.run(`SET TimeZone = 'UTC'`);
let chain = Promise.resolve();
process.on('message', (message) => {
  const { id, sql } = message;
  chain = chain.then(() =>
    connection.run(sql).then(
      () => process.send({ id, ok: true }),
      (err) => process.send({ id, ok: false, error: String(err?.message ?? err) }),
    ),
  );
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
