import type { ClientBase, QueryResult, QueryResultRow } from 'pg';

/**
 * Each statement's result of a simple query (literals only) of one or more
 * statements, in order: node-postgres answers one statement with one result
 * and several with an array of them.
 */
export async function simpleQueryResults<R extends QueryResultRow = Record<string, unknown>>(client: ClientBase, sql: string): Promise<Array<QueryResult<R>>> {
  const answer = (await client.query(sql)) as unknown as QueryResult<R> | Array<QueryResult<R>>;
  return Array.isArray(answer) ? answer : [answer];
}
