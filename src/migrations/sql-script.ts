import { copyHead, NO_TRANSACTION_MARKER, splitSql, type CopyData, type SqlStatement } from './split-sql.js';
import { findNotUtf8, type NotUtf8 } from './utf8.js';

/** An SQL revision file as belay will run it. */
export interface SqlScript {
  statements: SqlStatement[];
  /** False when the first line is `-- belay:no-transaction`. */
  transactional: boolean;
  /** Why belay cannot run it as written, each naming its line; empty when it can. */
  problems: string[];
  /** Set when the file is not UTF-8 text: then it is not split at all. */
  notText?: NotUtf8;
}

/** A revision file's bytes as belay will run them: refused, as psql's server would, when they are not UTF-8. */
export function readSqlScript(data: Buffer): SqlScript {
  const notText = findNotUtf8(data);
  if (!notText) return parseSqlScript(data.toString('utf8'));
  return {
    statements: [],
    transactional: true,
    problems: [`line ${notText.line}: invalid byte sequence for encoding "UTF8": ${notText.bytes} (belay reads revision files as UTF-8)`],
    notText,
  };
}

const PLAIN_BEGIN = /^(BEGIN|START\s+TRANSACTION)(\s+(WORK|TRANSACTION))?$/i;
const PLAIN_COMMIT = /^(COMMIT|END)(\s+(WORK|TRANSACTION))?$/i;
const TRANSACTION_CONTROL = /^(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|PREPARE\s+TRANSACTION)\b/i;
const ROLLBACK_TO_SAVEPOINT = /^ROLLBACK(\s+(WORK|TRANSACTION))?\s+TO\b/i;
/** Statements PostgreSQL refuses inside a transaction block. */
const OUTSIDE_TRANSACTION_ONLY =
  /^(VACUUM\b|(CREATE|DROP)\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b|REINDEX\b[^;]*\bCONCURRENTLY\b|ALTER\s+TABLE\b[^;]*\bDETACH\s+PARTITION\b[^;]*\bCONCURRENTLY\b|(CREATE|DROP)\s+(DATABASE|TABLESPACE)\b|ALTER\s+SYSTEM\b)/i;

const leadingComments = (text: string): string => text.replace(/^(\s*\/\*[\s\S]*?\*\/)+\s*/, '');

function controlsTransaction(statement: SqlStatement): boolean {
  const text = leadingComments(statement.text);
  return TRANSACTION_CONTROL.test(text) && !ROLLBACK_TO_SAVEPOINT.test(text);
}

/**
 * Split a revision file and check it can run the way belay runs it. A
 * transactional file runs inside belay's own transaction together with its
 * record, so a whole-file `BEGIN; … COMMIT;` wrapper (Sqitch and many
 * golang-migrate sets write one) is redundant and dropped; any other
 * transaction control would commit part of the revision behind belay's back.
 */
export function parseSqlScript(text: string): SqlScript {
  const { statements, metaCommands, copyData } = splitSql(text);
  const transactional = !NO_TRANSACTION_MARKER.test(text);
  const problems = [
    ...copyData.map((copy) => ({ line: copy.line, problem: copyDataProblem(copy) })),
    ...metaCommands.map((meta) => ({
      line: meta.line,
      problem: `line ${meta.line}: psql command \`${meta.text.slice(0, 40)}\` is not SQL (belay sends each statement to the server; load COPY data from a file or with INSERT)`,
    })),
  ]
    .sort((a, b) => a.line - b.line)
    .map((p) => p.problem);
  let body = statements;
  if (transactional) {
    const first = body[0];
    const last = body[body.length - 1];
    if (body.length >= 2 && first && last && PLAIN_BEGIN.test(leadingComments(first.text)) && PLAIN_COMMIT.test(leadingComments(last.text))) {
      body = body.slice(1, -1);
    }
    for (const statement of body.filter(controlsTransaction)) {
      problems.push(
        `line ${statement.line}: \`${leadingComments(statement.text).split(/\s+/, 2).join(' ')}\` inside a revision that belay runs in one transaction (remove it, or make the first line \`-- belay:no-transaction\`)`,
      );
    }
    for (const statement of body.filter((s) => OUTSIDE_TRANSACTION_ONLY.test(leadingComments(s.text)))) {
      problems.push(
        `line ${statement.line}: \`${leadingComments(statement.text).split(/\s+/, 4).join(' ')}\` cannot run inside a transaction block (make the first line \`-- belay:no-transaction\`)`,
      );
    }
  } else {
    const open = unclosedTransaction(body);
    if (open) {
      problems.push(
        `line ${open.line}: \`${leadingComments(open.text).split(/\s+/, 2).join(' ')}\` opens a transaction that the file never ends (add its COMMIT: belay would otherwise write its record of the revision inside it)`,
      );
    }
  }
  return { statements: body, transactional, problems };
}

/** psql sends the lines after a `COPY … FROM stdin` as its data; belay, sending statements only, has none to give it. */
function copyDataProblem(copy: CopyData): string {
  const lines = copy.firstLine > copy.lastLine ? 'none: the file ends' : copy.firstLine === copy.lastLine ? `line ${copy.firstLine}` : `lines ${copy.firstLine}–${copy.lastLine}`;
  return `line ${copy.line}: \`${copyHead(copy)}\` is followed by data (${lines}) that only psql can send: belay sends each statement to the server alone (load the data with INSERT, or with COPY … FROM a file the server reads)`;
}

/** In a no-transaction file, the BEGIN still open at its end, if any. */
function unclosedTransaction(statements: SqlStatement[]): SqlStatement | undefined {
  let open: SqlStatement | undefined;
  for (const statement of statements.filter(controlsTransaction)) {
    open = /^(BEGIN|START\s+TRANSACTION)\b/i.test(leadingComments(statement.text)) ? (open ?? statement) : undefined;
  }
  return open;
}
