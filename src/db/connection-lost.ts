/** SQLSTATEs of a server that went away: connection exceptions (class 08) and shutdowns. */
const LOST_STATES = /^(08...|57P01|57P02|57P03)$/;
const LOST_ERRNOS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ENOTCONN', 'ETIMEDOUT']);
// node-postgres reports a socket that closed under it in words, without a code
const LOST_WORDS = /Connection terminated|server closed the connection|Client has encountered a connection error|not queryable/i;

/** Whether an error says the database stopped answering (as opposed to refusing a statement). */
export function isConnectionLost(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code } = error as { code?: unknown };
  if (typeof code === 'string' && (LOST_STATES.test(code) || LOST_ERRNOS.has(code))) return true;
  return LOST_WORDS.test(error.message);
}
