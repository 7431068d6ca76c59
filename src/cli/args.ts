/** Flag parsing shared by the commands: node:util parseArgs, with errors that name the flag. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../core/errors.js';
import { parseInstant, type EpochMs } from '../core/time.js';
import { loadConfig, type LarderConfig } from '../config.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const COMMON_OPTIONS = { repo: { type: 'string' } } as const satisfies Options;

export function parseFlags<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: true });
  } catch (err) {
    throw new InputError((err as Error).message.replace(/^TypeError \[\w+\]: /, ''));
  }
}

export function configFrom(values: { repo?: string | boolean | (string | boolean)[] | undefined; port?: unknown }): LarderConfig {
  return loadConfig(process.env, {
    ...(typeof values.repo === 'string' && { repo: values.repo }),
    ...((typeof values.port === 'string' || typeof values.port === 'number') && { port: values.port }),
  });
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new InputError(`--${name} is required`);
  return v;
}

export function instantFlag(values: Record<string, unknown>, name: string): EpochMs | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  try {
    return parseInstant(String(v));
  } catch (err) {
    throw new InputError(`--${name}: ${(err as Error).message}`);
  }
}

export const listFlag = (v: unknown): string[] | undefined =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
