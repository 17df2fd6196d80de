import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { freshDatabase } from './support/pg.js';

describe('test harness', () => {
  it('gives each test its own database on a real server, reachable with a password', async () => {
    const db = await freshDatabase();
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ db: string; v: string }>('select current_database() as db, version() as v');
    await client.end();
    expect(rows[0]?.db).toBe(db.name);
    expect(rows[0]?.v).toMatch(/PostgreSQL/);
  });

  it('refuses a wrong password over TCP', async () => {
    const db = await freshDatabase();
    const client = new pg.Client({ connectionString: db.url.replace(/:[^:@]*@/, ':wrong@') });
    await expect(client.connect()).rejects.toThrow(/password authentication failed/);
  });
});
