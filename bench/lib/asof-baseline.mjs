#!/usr/bin/env node
// The reference for bench/dataset.bench.mjs: the point-in-time join a DuckDB user would write by
// hand over the same Parquet files, one ASOF LEFT JOIN with the TTL bound, in input order.
//   node bench/lib/asof-baseline.mjs --entities E.parquet --features 'offline/view/date=*/*.parquet'
//        --keys driver_id --columns f0,f1 --ttl-ms N --out OUT.parquet [--threads N]
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';

const { values: a } = parseArgs({
  options: {
    entities: { type: 'string' },
    features: { type: 'string' },
    keys: { type: 'string' },
    columns: { type: 'string' },
    'ttl-ms': { type: 'string', default: '0' },
    out: { type: 'string' },
    threads: { type: 'string', default: String(availableParallelism()) },
  },
});
const q = (s) => `'${s.replace(/'/g, "''")}'`;
const keys = a.keys.split(',');
const ttl = Number(a['ttl-ms']);
const columns = a.columns.split(',').map((c) => (ttl > 0 ? `CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL (${ttl}) MILLISECOND THEN f.${c} END AS ${c}` : `f.${c}`));

const instance = await DuckDBInstance.create(':memory:', { threads: a.threads });
const connection = await instance.connect();
await connection.run(`COPY (
  SELECT e.* EXCLUDE (file_row_number), ${columns.join(', ')}
  FROM read_parquet(${q(a.entities)}, file_row_number = true) AS e
  ASOF LEFT JOIN read_parquet(${q(a.features)}) AS f
    ON ${keys.map((k) => `e.${k} = f.${k}`).join(' AND ')} AND e.event_timestamp >= f.event_timestamp
  ORDER BY e.file_row_number
) TO ${q(a.out)} (FORMAT parquet)`);
connection.closeSync();
instance.closeSync();
