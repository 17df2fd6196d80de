import { describe, expect, it } from 'vitest';
import { belay } from './support/cli.js';
import { freshDatabase } from './support/pg.js';
import { baseArgs, GOOD_REVISIONS, makeProject } from './support/project.js';

// `belay history` with the server out of reach: what the journal files beside the backups hold, then the connection error (exit 2)
describe('history with the database out of reach', () => {
  it('lists the runs the journal files hold and shows one run\'s steps from its file, says the database could not be reached, exits 2', async () => {
    const db = await freshDatabase();
    const project = await makeProject(GOOD_REVISIONS);
    const up = await belay([...baseArgs(project, db.url), '--json', 'migrate', 'up', '--to', '0002']);
    expect(up.code, up.stderr).toBe(0);
    const runId = (JSON.parse(up.stdout) as { result: { runId: string } }).result.runId;
    const down = new URL(db.url);
    down.port = '1'; // nothing listens there
    const args = baseArgs(project, down.toString());

    const list = await belay([...args, 'history']);
    expect(list.code, list.stderr).toBe(2);
    expect(list.stdout).toMatch(new RegExp(`^${runId} .* migrate-up .*∅ → 0002_profiles`, 'm'));
    expect(list.stderr).toMatch(/belay: cannot connect to .*:1\/.*; the runs shown are from the journal files in \S+journal only/);
    expect(list.stderr).toMatch(/next: Check that the server is running/);

    const json = await belay([...args, '--json', 'history']);
    expect(json.code).toBe(2);
    const envelope = JSON.parse(json.stdout) as { exitCode: number; outcome: string; message: string; result: Array<{ runId: string }> };
    expect(envelope).toMatchObject({ exitCode: 2, outcome: 'usage-error' });
    expect(envelope.message).toMatch(/^cannot connect to /);
    expect(envelope.result.map((r) => r.runId)).toEqual([runId]);

    const one = await belay([...args, 'history', runId.slice(0, 8)]);
    expect(one.code, one.stderr).toBe(2);
    expect(one.stdout).toContain(`run ${runId}: migrate-up`);
    expect(one.stdout).toContain('steps from the journal file');
    expect(one.stdout).toMatch(/end\s+apply 0002_profiles ok/);
    expect(one.stderr).toMatch(/cannot connect to .*; its steps are from the journal files/);
  });
});
