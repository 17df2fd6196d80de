import type { ClientBase, QueryResult, QueryResultRow } from 'pg';

/** What a TS/JS revision's up(ctx), down(ctx) and verify(ctx) receive. */
export interface RevisionContext {
  /** Run one statement (parameterised with $1…); returns the pg result. */
  sql<T extends QueryResultRow = QueryResultRow>(text: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** The node-postgres client, inside the revision's transaction unless the module is marked no-transaction. */
  client: ClientBase;
  revision: string;
  direction: 'up' | 'down' | 'verify';
  log(message: string): void;
}

export interface RevisionModule {
  up(ctx: RevisionContext): Promise<unknown> | unknown;
  down?(ctx: RevisionContext): Promise<unknown> | unknown;
  verify?(ctx: RevisionContext): Promise<unknown> | unknown;
}
