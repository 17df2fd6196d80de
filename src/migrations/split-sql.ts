/** One statement of an SQL file, with where it starts (1-based line). */
export interface SqlStatement {
  text: string;
  line: number;
}

export interface SplitSql {
  statements: SqlStatement[];
  /** psql backslash commands (`\set`, `\i`, the `\.` ending COPY data): not SQL, the server cannot run them. */
  metaCommands: SqlStatement[];
}

const WORD = /[A-Za-z_]/;

/**
 * Split an SQL script into statements the way psql does: on semicolons outside
 * quotes, dollar quotes, comments, parentheses and `BEGIN ATOMIC … END`
 * function bodies. A failure is reported with the statement and line it came
 * from, though a transactional file's statements go to the server together
 * (see batchesOf in run-revision.ts).
 */
export function splitSql(script: string): SplitSql {
  const statements: SqlStatement[] = [];
  const metaCommands: SqlStatement[] = [];
  let start = 0;
  let line = 1;
  let startLine = 1;
  let depth = 0;
  let atomicDepth = 0;
  let previousWord = '';
  let i = 0;

  const push = (end: number): void => {
    const raw = script.slice(start, end);
    const lead = /^(\s|--[^\n]*)*/.exec(raw)?.[0] ?? '';
    const text = raw.slice(lead.length).trim();
    if (text.length > 0 && !isOnlyComments(text)) statements.push({ text, line: startLine + countNewlines(lead) });
  };

  while (i < script.length) {
    const ch = script[i]!;
    const next = script[i + 1];
    if (ch === '\n') {
      line++;
      i++;
    } else if (ch === '-' && next === '-') {
      while (i < script.length && script[i] !== '\n') i++;
    } else if (ch === '/' && next === '*') {
      let nesting = 1;
      i += 2;
      while (i < script.length && nesting > 0) {
        if (script[i] === '\n') line++;
        if (script[i] === '/' && script[i + 1] === '*') {
          nesting++;
          i += 2;
        } else if (script[i] === '*' && script[i + 1] === '/') {
          nesting--;
          i += 2;
        } else i++;
      }
    } else if (ch === "'" || ch === '"') {
      const backslashEscapes = ch === "'" && (script[i - 1] === 'E' || script[i - 1] === 'e') && !WORD.test(script[i - 2] ?? ' ');
      i++;
      while (i < script.length) {
        const c = script[i]!;
        if (c === '\n') line++;
        if (backslashEscapes && c === '\\') {
          i += 2;
          continue;
        }
        if (c === ch) {
          if (script[i + 1] === ch) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
    } else if (ch === '$' && !WORD.test(script[i - 1] ?? ' ') && !/\d/.test(script[i - 1] ?? ' ')) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(script.slice(i));
      if (!tag) {
        i++;
        continue;
      }
      const close = script.indexOf(tag[0], i + tag[0].length);
      const end = close === -1 ? script.length : close + tag[0].length;
      line += countNewlines(script.slice(i, end));
      i = end;
    } else if (ch === '\\') {
      // outside quotes a backslash is never SQL: psql reads the rest of the line as a command
      const end = script.indexOf('\n', i);
      metaCommands.push({ text: script.slice(i, end === -1 ? script.length : end).trim(), line });
      i = end === -1 ? script.length : end;
    } else if (ch === '(') {
      depth++;
      i++;
    } else if (ch === ')') {
      depth = Math.max(0, depth - 1);
      i++;
    } else if (WORD.test(ch)) {
      let j = i;
      while (j < script.length && /[A-Za-z0-9_$]/.test(script[j]!)) j++;
      const word = script.slice(i, j).toUpperCase();
      if (word === 'ATOMIC' && previousWord === 'BEGIN') atomicDepth++;
      else if (atomicDepth > 0 && word === 'CASE') atomicDepth++;
      else if (atomicDepth > 0 && word === 'END') atomicDepth--;
      previousWord = word;
      i = j;
    } else if (ch === ';' && depth === 0 && atomicDepth === 0) {
      push(i);
      start = i + 1;
      startLine = line;
      previousWord = '';
      i++;
    } else {
      i++;
    }
  }
  push(script.length);
  return { statements, metaCommands };
}

function countNewlines(text: string): number {
  let n = 0;
  for (const ch of text) if (ch === '\n') n++;
  return n;
}

function isOnlyComments(text: string): boolean {
  return text.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '').trim() === '';
}

export const NO_TRANSACTION_MARKER = /^\s*(--|\/\/)\s*belay:no-transaction\b/;
