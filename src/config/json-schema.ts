import { z } from 'zod';
import { configSchema } from './schema.js';

/** belay.schema.json: the config schema as editors read it (what a file may contain, defaults optional). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', target: 'draft-7' }),
    $id: 'https://unpkg.com/pg-belay/belay.schema.json',
    title: 'belay.config.json',
  };
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
