/** One statement of an SQL file, with where it starts (1-based line). */
export interface SqlStatement {
  text: string;
  line: number;
}

/** A `COPY … FROM stdin` (its text and line) and the data lines psql sends it. */
export interface CopyData extends SqlStatement {
  /** The data's first line and its last (the `\.` line, or the file's last): firstLine > lastLine when there is none. */
  firstLine: number;
  lastLine: number;
}

export interface SplitSql {
  statements: SqlStatement[];
  /** psql backslash commands (`\set`, `\i`, …): not SQL, the server cannot run them. */
  metaCommands: SqlStatement[];
  /** The data of each `COPY … FROM stdin`: never SQL, whatever its lines hold. */
  copyData: CopyData[];
}

/**
 * As PostgreSQL's scanner (scan.l, which psql's follows) reads them: an
 * identifier starts with a letter (any non-ASCII character counts as one) or
 * `_`, and goes on with those, digits and `$`; a dollar quote's tag is made
 * like an identifier without `$`; `$` and digits is a parameter.
 */
const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_CONT = /[A-Za-z_\u0080-\uffff0-9$]/;
const DIGIT = /[0-9]/;
const DOLLAR_QUOTE = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_\u0080-\uffff0-9]*)?\$/y;
/**
 * pg_dump's `\restrict KEY` and `\unrestrict KEY` lines (15.14, 16.10, 17.6 and
 * later write them around every dump): they forbid psql's other backslash
 * commands in between, and belay runs none, so they are passed over.
 */
const DUMP_GUARD = /^\\(un)?restrict(\s|$)/;
/** The line that ends COPY data for psql. */
const END_OF_COPY_DATA = /^\\\.\r?$/;

/**
 * Split an SQL script into statements the way psql does: on semicolons outside
 * quotes, dollar quotes, comments, parentheses and `BEGIN ATOMIC … END`
 * function bodies. The lines after the one a `COPY … FROM stdin` ends on, up
 * to the line `\.`, are its data: psql sends them as they are, whatever they
 * hold. A failure is reported with the statement and line it came from,
 * though a transactional file's statements go to the server together (see
 * batchesOf in run-revision.ts).
 */
export function splitSql(script: string): SplitSql {
  const statements: SqlStatement[] = [];
  const metaCommands: SqlStatement[] = [];
  const copyData: CopyData[] = [];
  let start = 0;
  let line = 1;
  let startLine = 1;
  /** The start of a statement read before COPY data interrupted it (psql's query buffer). */
  let carried = '';
  let depth = 0;
  let atomicDepth = 0;
  let previousWord = '';
  let firstWord = '';
  let fromStdin = false;
  /** The `COPY … FROM stdin` statements ended on this line: their data follows it, in turn. */
  let copies: SqlStatement[] = [];
  let i = 0;

  const push = (end: number): SqlStatement | undefined => {
    const raw = carried + script.slice(start, end);
    carried = '';
    const lead = /^(\s|--[^\n]*)*/.exec(raw)?.[0] ?? '';
    const text = raw.slice(lead.length).trim();
    if (text.length === 0 || isOnlyComments(text)) return undefined;
    const statement = { text, line: startLine + countNewlines(lead) };
    statements.push(statement);
    return statement;
  };

  /** From the start of a line: past one COPY's data, the `\.` line included, as psql reads it. */
  const skipCopyData = (copy: SqlStatement): void => {
    const firstLine = line;
    let lastLine = line - 1;
    while (i < script.length) {
      const end = script.indexOf('\n', i);
      const text = script.slice(i, end === -1 ? script.length : end);
      lastLine = line;
      i = end === -1 ? script.length : end + 1;
      if (end !== -1) line++;
      if (END_OF_COPY_DATA.test(text)) break;
    }
    copyData.push({ ...copy, firstLine, lastLine });
  };

  const isCopyFromStdin = (): boolean => firstWord === 'COPY' && fromStdin;

  while (i < script.length) {
    const ch = script[i]!;
    const next = script[i + 1];
    if (ch === '\n') {
      line++;
      i++;
      if (copies.length > 0) {
        const before = carried + script.slice(start, i);
        for (const copy of copies) skipCopyData(copy);
        copies = [];
        // the data is no part of the statement around it
        carried = isOnlyComments(before) ? '' : before;
        start = i;
        if (!carried) startLine = line;
      }
    } else if (ch === '-' && next === '-') {
      i = lineCommentEnd(script, i);
    } else if ((ch === '/' && next === '*') || ch === "'" || ch === '"' || ch === '$') {
      const end = ch === '/' ? blockCommentEnd(script, i) : ch === '$' ? dollarEnd(script, i) : quotedEnd(script, i);
      line += countNewlines(script.slice(i, end));
      i = end;
    } else if (ch === '\\') {
      // outside quotes a backslash is never SQL: psql reads the rest of the line as a command
      const end = script.indexOf('\n', i);
      const text = script.slice(i, end === -1 ? script.length : end).trim();
      if (DUMP_GUARD.test(text)) {
        // left out of the statement around it, its newline kept for the lines after it
        carried += script.slice(start, i);
        start = end === -1 ? script.length : end;
      } else metaCommands.push({ text, line });
      i = end === -1 ? script.length : end;
    } else if (ch === '(') {
      depth++;
      i++;
    } else if (ch === ')') {
      depth = Math.max(0, depth - 1);
      i++;
    } else if (DIGIT.test(ch)) {
      // a number: a `$` right after it starts a dollar quote, as after any other token
      while (i < script.length && DIGIT.test(script[i]!)) i++;
    } else if (IDENT_START.test(ch)) {
      // a word, read whole: a `$` inside it (`a$b`, `x1$`) is part of it
      let j = i + 1;
      while (j < script.length && IDENT_CONT.test(script[j]!)) j++;
      const word = script.slice(i, j).toUpperCase();
      if (word === 'ATOMIC' && previousWord === 'BEGIN') atomicDepth++;
      else if (atomicDepth > 0 && word === 'CASE') atomicDepth++;
      else if (atomicDepth > 0 && word === 'END') atomicDepth--;
      if (firstWord === '') firstWord = word;
      if (depth === 0 && word === 'STDIN' && previousWord === 'FROM') fromStdin = true;
      previousWord = word;
      i = j;
    } else if (ch === ';' && depth === 0 && atomicDepth === 0) {
      const statement = push(i);
      if (statement && isCopyFromStdin()) copies.push(statement);
      start = i + 1;
      startLine = line;
      previousWord = '';
      firstWord = '';
      fromStdin = false;
      i++;
    } else {
      i++;
    }
  }
  const last = push(script.length);
  // a COPY … FROM stdin on the last line: psql reads its data to the end of the file, none
  if (last && isCopyFromStdin()) copies.push(last);
  for (const copy of copies) copyData.push({ ...copy, firstLine: line + 1, lastLine: line });
  return { statements, metaCommands, copyData };
}

/** Past a `--` comment, to its line's end (the newline not included). */
function lineCommentEnd(text: string, i: number): number {
  const end = text.indexOf('\n', i);
  return end === -1 ? text.length : end;
}

/** Past a block comment starting at `i` (block comments nest); past the text's end when it is not closed. */
function blockCommentEnd(text: string, i: number): number {
  let nesting = 1;
  let j = i + 2;
  while (j < text.length && nesting > 0) {
    if (text[j] === '/' && text[j + 1] === '*') {
      nesting++;
      j += 2;
    } else if (text[j] === '*' && text[j + 1] === '/') {
      nesting--;
      j += 2;
    } else j++;
  }
  return nesting > 0 ? text.length + 1 : j;
}

/** Past a string constant or a quoted identifier starting at `i` (its quote doubled inside; backslash escapes in an E'' string). */
function quotedEnd(text: string, i: number): number {
  const quote = text[i]!;
  const backslashEscapes = quote === "'" && (text[i - 1] === 'E' || text[i - 1] === 'e') && !IDENT_CONT.test(text[i - 2] ?? ' ');
  let j = i + 1;
  while (j < text.length) {
    const c = text[j]!;
    if (backslashEscapes && c === '\\') {
      j += 2;
      continue;
    }
    if (c === quote) {
      if (text[j + 1] !== quote) return j + 1;
      j++;
    }
    j++;
  }
  return text.length + 1;
}

/** Past what starts with `$` at `i`: a parameter ($1), a dollar-quoted string (past the text's end when not closed), or the `$` alone. */
function dollarEnd(text: string, i: number): number {
  if (DIGIT.test(text[i + 1] ?? '')) {
    let j = i + 1;
    while (j < text.length && DIGIT.test(text[j]!)) j++;
    return j;
  }
  const tag = dollarTagAt(text, i);
  return tag ? dollarQuoteEnd(text, i, tag) : i + 1;
}

/** Past the end of the dollar quote opened by `tag` at `i`; text.length + 1 when it is never closed. */
function dollarQuoteEnd(text: string, i: number, tag: string): number {
  const close = text.indexOf(tag, i + tag.length);
  return close === -1 ? text.length + 1 : close + tag.length;
}

function dollarTagAt(text: string, i: number): string | undefined {
  DOLLAR_QUOTE.lastIndex = i;
  return DOLLAR_QUOTE.exec(text)?.[0];
}

/** A statement's text before the body of a DO block: `DO`, and its LANGUAGE when that comes first. */
const DO_HEAD = /^\s*DO(?:\s+LANGUAGE\s+(?:"(?:[^"]|"")+"|[A-Za-z_]\w*))?\s*$/i;

/**
 * A statement's code as the server reads it: every comment a space (the
 * scanner's, so a `--` inside a string constant stays), and, with
 * `blankStrings`, every string constant empty (`''`), dollar-quoted ones
 * too, so that what a statement stores or compares is not read as what it
 * does. A DO block's body runs: it is code, and keeps its strings (what it
 * EXECUTEs is its code); its comments go, as do those of any dollar-quoted
 * text kept (without `blankStrings`, a function's body).
 */
export function sqlCode(text: string, options: { blankStrings?: boolean } = {}): string {
  let code = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    const next = text[i + 1];
    const tag = ch === '$' && !DIGIT.test(next ?? '') ? dollarTagAt(text, i) : undefined;
    let end: number;
    if (ch === '-' && next === '-') {
      end = lineCommentEnd(text, i);
      code += ' ';
    } else if (ch === '/' && next === '*') {
      end = blockCommentEnd(text, i);
      // a comment never closed is no comment to leave out: the server refuses it
      code += end > text.length ? text.slice(i) : ' ';
    } else if (ch === "'" || ch === '"') {
      end = quotedEnd(text, i);
      code += ch === "'" && options.blankStrings ? "''" : text.slice(i, end);
    } else if (tag) {
      end = dollarQuoteEnd(text, i, tag);
      const closed = end <= text.length;
      const body = text.slice(i + tag.length, closed ? end - tag.length : text.length);
      code += options.blankStrings && !DO_HEAD.test(code) ? "''" : `${tag}${sqlCode(body)}${closed ? tag : ''}`;
    } else {
      // a word whole: a `$` inside it (`a$b$`) is part of it, no dollar quote
      end = i + 1;
      if (IDENT_START.test(ch)) while (end < text.length && IDENT_CONT.test(text[end]!)) end++;
      code += text.slice(i, end);
    }
    i = Math.min(end, text.length);
  }
  return code;
}

/** How a message names a `COPY … FROM stdin`: up to its `stdin`, on one line, shortened when long. */
export function copyHead(copy: CopyData): string {
  const head = (/^[\s\S]*?\bFROM\s+STDIN\b/i.exec(copy.text)?.[0] ?? copy.text).replace(/\s+/g, ' ');
  return head.length <= 80 ? head : `${head.split(' ', 2).join(' ')} … ${head.split(' ').slice(-2).join(' ')}`;
}

function countNewlines(text: string): number {
  let n = 0;
  for (const ch of text) if (ch === '\n') n++;
  return n;
}

/** Whether `text` holds nothing but comments and white space (a comment never closed is not one: the server refuses it). */
function isOnlyComments(text: string): boolean {
  for (let i = 0; i < text.length; ) {
    if (text.startsWith('--', i)) i = lineCommentEnd(text, i);
    else if (text.startsWith('/*', i)) {
      i = blockCommentEnd(text, i);
      if (i > text.length) return false;
    } else if (/\s/.test(text[i]!)) i++;
    else return false;
  }
  return true;
}

export const NO_TRANSACTION_MARKER = /^\s*(--|\/\/)\s*belay:no-transaction\b/;
