#!/usr/bin/env zx
// npm run schema: write belay.schema.json from the zod schema in src/config/schema.ts (built to dist/).
// test/config-schema.test.ts fails when the committed file is not what this writes.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { configJsonSchemaText } = await import(path.join(root, 'dist/config/json-schema.js'));
await writeFile(path.join(root, 'belay.schema.json'), configJsonSchemaText());
console.log('wrote belay.schema.json');
