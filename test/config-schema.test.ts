import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../src/config/defaults.js';
import { configJsonSchemaText } from '../src/config/json-schema.js';
import { validateConfig } from '../src/config/schema.js';
import { ROOT } from './support/cli.js';

describe('belay.schema.json', () => {
  it('is what `npm run schema` writes from the zod schema (run it after changing src/config/schema.ts)', async () => {
    expect(await readFile(join(ROOT, 'belay.schema.json'), 'utf8')).toBe(configJsonSchemaText());
  });

  it('the defaults used without a config file are what the schema makes of {}', () => {
    expect(validateConfig({})).toEqual({ ok: true, config: DEFAULT_CONFIG });
  });

  it('describes the keys editors complete, with their defaults and choices', async () => {
    const schema = JSON.parse(await readFile(join(ROOT, 'belay.schema.json'), 'utf8')) as {
      additionalProperties: boolean;
      properties: Record<string, { properties?: Record<string, { enum?: string[]; default?: unknown }> }>;
    };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['health', 'integrity', 'backup', 'hooks', 'databaseUrl']));
    expect(schema.properties.integrity!.properties!.mode).toMatchObject({ enum: ['strict', 'invariants', 'off'], default: 'strict' });
    expect(Object.keys(schema.properties.hooks!.properties!)).toEqual(['beforeApply', 'afterApply', 'onRollback', 'afterRollback', 'afterRestore']);
  });
});
