import type { ClientBase } from 'pg';
import { escapeLiteral } from 'pg';
import { quoteIdent } from '../db/ident.js';
import { REHEARSAL_PREFIX } from './throwaway.js';

/**
 * What a server holds beside its databases, as any role may read it: roles,
 * their memberships and settings (ALTER ROLE … SET, ALTER DATABASE … SET),
 * replication slots, tablespaces. Dropping the throwaway database removes
 * none of it. Databases are left out: other clients of a shared server make
 * and drop them all the time, and a revision cannot make one in its
 * transaction. Settings of rehearsal databases go with them.
 */
interface Entry {
  /** "role app_reader", "setting work_mem of role bob". */
  label: string;
  value: string;
  /** What removes it, once it appeared. */
  undo: string;
  /** What puts `value` back, when it changed or disappeared; undefined: only by hand. */
  redo?: string;
  /** The role it belongs to: dropping that role removes it as well. */
  role?: string;
}

export type ClusterState = Map<string, Entry>;

interface Row {
  kind: 'role' | 'member' | 'setting' | 'slot' | 'tablespace';
  a: string | null;
  b: string | null;
  c: string | null;
}

const QUERY = `
SELECT 'role' AS kind, rolname AS a, NULL AS b, NULL AS c FROM pg_roles
UNION ALL
SELECT DISTINCT 'member', m.rolname, r.rolname, NULL FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
UNION ALL
SELECT 'setting', r.rolname, d.datname, s.setting
  FROM pg_db_role_setting rs LEFT JOIN pg_roles r ON r.oid = rs.setrole LEFT JOIN pg_database d ON d.oid = rs.setdatabase, unnest(rs.setconfig) AS s(setting)
 WHERE d.datname IS NULL OR left(d.datname, length($1)) <> $1
UNION ALL
SELECT 'slot', slot_name, slot_type, NULL FROM pg_replication_slots
UNION ALL
SELECT 'tablespace', spcname, NULL, NULL FROM pg_tablespace`;

function entryOf(row: Row): [string, Entry] {
  const a = row.a ?? '';
  switch (row.kind) {
    case 'role':
      return [`role ${a}`, { label: `role ${a}`, value: '', undo: `DROP ROLE ${quoteIdent(a)}`, role: a }];
    case 'member': {
      const group = row.b ?? '';
      return [`member ${a} ${group}`, { label: `membership of ${a} in ${group}`, value: '', undo: `REVOKE ${quoteIdent(group)} FROM ${quoteIdent(a)}`, redo: `GRANT ${quoteIdent(group)} TO ${quoteIdent(a)}`, role: a }];
    }
    case 'setting': {
      const setting = row.c ?? '';
      const equals = setting.indexOf('=');
      const name = setting.slice(0, equals);
      const value = setting.slice(equals + 1);
      const database = row.b;
      // setrole 0: ALTER DATABASE … SET, for every role
      const target = row.a === null ? `ALTER DATABASE ${quoteIdent(database ?? '')}` : `ALTER ROLE ${quoteIdent(a)}${database === null ? '' : ` IN DATABASE ${quoteIdent(database)}`}`;
      const label = `setting ${name} of ${row.a === null ? `database ${database ?? ''}` : `role ${a}${database === null ? '' : ` in database ${database}`}`}`;
      return [
        `setting ${a} ${database ?? ''} ${name}`,
        { label, value, undo: `${target} RESET ${quoteIdent(name)}`, redo: `${target} SET ${quoteIdent(name)} TO ${escapeLiteral(value)}`, ...(row.a === null ? {} : { role: a }) },
      ];
    }
    case 'slot':
      return [`slot ${a}`, { label: `replication slot ${a}`, value: row.b ?? '', undo: `SELECT pg_drop_replication_slot(${escapeLiteral(a)})` }];
    case 'tablespace':
      return [`tablespace ${a}`, { label: `tablespace ${a}`, value: '', undo: `DROP TABLESPACE ${quoteIdent(a)}` }];
  }
}

export async function readClusterState(client: ClientBase): Promise<ClusterState> {
  const { rows } = await client.query<Row>(QUERY, [REHEARSAL_PREFIX]);
  return new Map(rows.map(entryOf));
}

export interface ClusterChange {
  /** "role app_reader", "setting work_mem of role bob = 64MB (was 4MB)", "role carol dropped". */
  said: string;
  /** What to run to put it back as it was; undefined: a dropped role or slot, made again only by hand. */
  fix?: string;
}

/**
 * What differs from `before`, among the keys in `within` when given (those
 * this rehearsal's own steps changed: on a shared server, other clients
 * change it too). A setting or membership of a role that appeared goes with
 * it: DROP ROLE removes them.
 */
export function clusterChanges(before: ClusterState, after: ClusterState, within?: ReadonlySet<string>): ClusterChange[] {
  const keys = [...new Set([...before.keys(), ...after.keys()])].filter((key) => !within || within.has(key));
  const newRoles = new Set(keys.filter((key) => key.startsWith('role ') && !before.has(key)).map((key) => after.get(key)!.role));
  const changes: ClusterChange[] = [];
  for (const key of keys) {
    const was = before.get(key);
    const now = after.get(key);
    if (now && !was) {
      if (!key.startsWith('role ') && now.role !== undefined && newRoles.has(now.role)) continue;
      changes.push({ said: now.value && key.startsWith('setting ') ? `${now.label} = ${now.value}` : now.label, fix: now.undo });
    } else if (was && !now) {
      changes.push({ said: `${was.label} dropped`, ...(was.redo ? { fix: was.redo } : {}) });
    } else if (was && now && was.value !== now.value) {
      changes.push({ said: `${now.label} = ${now.value} (was ${was.value})`, ...(was.redo ? { fix: was.redo } : {}) });
    }
  }
  return changes;
}

/** The keys that differ between two states. */
function changedKeys(before: ClusterState, after: ClusterState): string[] {
  return [...new Set([...before.keys(), ...after.keys()])].filter((key) => before.get(key)?.value !== after.get(key)?.value || before.has(key) !== after.has(key));
}

/** Replication slots are made and dropped at once, whatever transaction the call is in. */
const atOnce = (key: string): boolean => key.startsWith('slot ');

/**
 * The server's state around each step of a rehearsal, read on a session that
 * is idle meanwhile, and the keys the steps changed: only those are blamed on
 * the rehearsal. Other clients of a shared server change it meanwhile: what a
 * step in a transaction changed is told apart from theirs inside it, before it
 * commits (lookInside: seen by its own session, not yet by the others).
 */
export class ClusterWatch {
  readonly touched = new Set<string>();
  /** What the running step's own transaction changed, once looked at. */
  private inside: Set<string> | undefined;
  /** On a server nobody else uses: the state the last step left, which the next one starts from. */
  private last: ClusterState | undefined;

  /** `shared`: a connected server, which other clients change meanwhile (an ephemeral cluster has none). */
  constructor(
    private readonly client: () => ClientBase,
    private readonly shared: boolean,
  ) {}

  read(): Promise<ClusterState> {
    return readClusterState(this.client());
  }

  /** Something other than a step ran (a failed step, a rebuild): the next step's state before it is read again. */
  forget(): void {
    this.last = undefined;
  }

  /** From a step's session, in its transaction before it commits (the engine's beforeCommit); only on a shared server. */
  async lookInside(session: ClientBase): Promise<void> {
    if (!this.shared) return;
    const [own, committed] = await Promise.all([readClusterState(session), this.read()]);
    for (const key of changedKeys(committed, own)) this.inside?.add(key);
  }

  /** Run `work` (one step, `transactional` or not) between two reads; the state before and after it, and what it changed. */
  async around<T>(transactional: boolean, work: () => Promise<T>): Promise<{ result: T; before: ClusterState; after: ClusterState; changed: ReadonlySet<string> }> {
    const before = (this.shared ? undefined : this.last) ?? (await this.read());
    const inside = new Set<string>();
    this.inside = inside;
    let result: T;
    try {
      result = await work();
    } catch (error) {
      this.forget();
      throw error;
    } finally {
      this.inside = undefined;
    }
    const after = await this.read();
    this.last = after;
    const window = changedKeys(before, after);
    const changed = new Set(transactional && this.shared ? [...inside, ...window.filter(atOnce)] : window);
    for (const key of changed) this.touched.add(key);
    return { result, before, after, changed };
  }
}
