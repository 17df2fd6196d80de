import { describe, expect, it } from 'vitest';
import { parseSqlScript } from '../src/migrations/sql-script.js';
import { splitSql, sqlCode } from '../src/migrations/split-sql.js';

const texts = (script: string): string[] => splitSql(script).statements.map((s) => s.text);

describe('splitting SQL the way psql does', () => {
  it('keeps semicolons inside quotes, dollar quotes, comments, parentheses and BEGIN ATOMIC bodies', () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', E'it\\'s;', \"odd;name\");",
      'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN RETURN 1; END $body$;',
      "DO $$ BEGIN PERFORM 1; END $$;",
      '/* a ; /* nested ; */ comment */ SELECT 1;',
      'CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END;',
      '-- trailing ; comment',
    ].join('\n');
    expect(texts(script)).toHaveLength(5);
    expect(splitSql(script).statements.map((s) => s.line)).toEqual([1, 2, 3, 4, 5]);
  });

  it('reports psql backslash commands with their lines instead of sending them', () => {
    const { statements, metaCommands, copyData } = splitSql("\\set ON_ERROR_STOP on\nSELECT '\\not a command';\nCOPY t FROM stdin;\n1\n\\.\n\\i more.sql\n");
    expect(metaCommands).toEqual([
      { text: '\\set ON_ERROR_STOP on', line: 1 },
      { text: '\\i more.sql', line: 6 },
    ]);
    expect(copyData).toEqual([{ text: 'COPY t FROM stdin', line: 3, firstLine: 4, lastLine: 5 }]);
    expect(statements[0]?.text).toContain("'\\not a command'");
  });

  it("passes over pg_dump's \\restrict and \\unrestrict lines: a schema dump runs as a revision, other backslash commands are still refused", () => {
    const dump = ['--', '-- PostgreSQL database dump', '--', '', '\\restrict AbC12', '', "SELECT pg_catalog.set_config('search_path', '', false);", 'CREATE TABLE public.t (id int);', '', '\\unrestrict AbC12', ''].join('\n');
    expect(parseSqlScript(dump).problems).toEqual([]);
    expect(splitSql(dump).statements).toEqual([
      { text: "SELECT pg_catalog.set_config('search_path', '', false)", line: 7 },
      { text: 'CREATE TABLE public.t (id int)', line: 8 },
    ]);
    expect(parseSqlScript('\\restrict k\n\\set ON_ERROR_STOP on\nSELECT 1;\n').problems).toEqual([
      'line 2: psql command `\\set ON_ERROR_STOP on` is not SQL (belay sends each statement to the server; load COPY data from a file or with INSERT)',
    ]);
  });

  it('takes any identifier-like tag for a dollar quote, non-ASCII letters too, as PostgreSQL does', () => {
    const script = [
      'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $größe$',
      'BEGIN',
      '  RETURN 1;',
      'END',
      '$größe$;',
      'DO $_ä1$ BEGIN PERFORM 1; END $_ä1$;',
      'SELECT 1;',
    ].join('\n');
    expect(splitSql(script).statements.map((s) => s.line)).toEqual([1, 6, 7]);
    expect(parseSqlScript(script).problems).toEqual([]);
  });

  it('never takes a parameter ($1) or a $ inside an identifier (a$b, ä$a$) for the start of a dollar quote', () => {
    expect(texts('PREPARE p (int) AS SELECT a$b$ FROM t WHERE id = $1;\nSELECT 2;')).toHaveLength(2);
    expect(texts('SELECT 1 AS ä$a$;\nSELECT 2 AS b$a$;')).toEqual(['SELECT 1 AS ä$a$', 'SELECT 2 AS b$a$']);
    expect(texts("SELECT $1$x$ a;b $x$;\nSELECT 'c';")).toEqual(['SELECT $1$x$ a;b $x$', "SELECT 'c'"]);
    // after a number, as after any token but a word, `$$` starts one
    expect(texts('SELECT 1$$a;b$$;\nSELECT 2;')).toEqual(['SELECT 1$$a;b$$', 'SELECT 2']);
  });

  it('skips COPY … FROM stdin data up to the \\. line whatever it holds, and reports the block', () => {
    const script = [
      'CREATE TABLE c (code text, name text);',
      'COPY c (code, name) FROM stdin;',
      "CI\tCôte d'Ivoire",
      'US\t$$ ; -- /* "x',
      '\\.',
      'SELECT 1;',
    ].join('\n');
    const split = splitSql(script);
    expect(split.statements).toEqual([
      { text: 'CREATE TABLE c (code text, name text)', line: 1 },
      { text: 'COPY c (code, name) FROM stdin', line: 2 },
      { text: 'SELECT 1', line: 6 },
    ]);
    expect(split.metaCommands).toEqual([]);
    expect(split.copyData).toEqual([{ text: 'COPY c (code, name) FROM stdin', line: 2, firstLine: 3, lastLine: 5 }]);
    // data to the end of the file when no \. ends it; the rest of the COPY's line is still SQL
    expect(splitSql("COPY c FROM STDIN WITH (FORMAT csv); SELECT 2;\nUS,'x\n").copyData).toEqual([{ text: 'COPY c FROM STDIN WITH (FORMAT csv)', line: 1, firstLine: 2, lastLine: 2 }]);
    expect(texts("COPY c FROM STDIN WITH (FORMAT csv); SELECT 2;\nUS,'x\n")).toEqual(['COPY c FROM STDIN WITH (FORMAT csv)', 'SELECT 2']);
    expect(splitSql("COPY c FROM stdin;\r\nCI\tCôte d'Ivoire\r\n\\.\r\nSELECT 3;\r\n").statements.map((s) => s.line)).toEqual([1, 4]);
    // other COPY statements have no data lines
    expect(splitSql("COPY c TO stdout;\nCOPY c FROM '/tmp/c.tsv';\nCOPY (SELECT 'FROM stdin') TO stdout;\nSELECT 4;").copyData).toEqual([]);
  });
});

describe('revision scripts as belay runs them', () => {
  it('drops a whole-file BEGIN … COMMIT wrapper: belay runs the revision in its own transaction', () => {
    const script = parseSqlScript('-- deploy users\nBEGIN;\nCREATE TABLE users (id int);\nCOMMIT;\n');
    expect(script.problems).toEqual([]);
    expect(script.statements.map((s) => s.text)).toEqual(['CREATE TABLE users (id int)']);
    expect(parseSqlScript('START TRANSACTION;\nSELECT 1;\nEND;').statements.map((s) => s.text)).toEqual(['SELECT 1']);
  });

  it('refuses transaction control that would commit part of a revision behind belay, naming the line', () => {
    expect(parseSqlScript('CREATE TABLE a (id int);\nCOMMIT;\nSELECT 1/0;').problems).toEqual([
      expect.stringMatching(/^line 2: `COMMIT` inside a revision that belay runs in one transaction/),
    ]);
    expect(parseSqlScript('BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;').problems).toHaveLength(2);
    expect(parseSqlScript('SAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;\nRELEASE s;').problems).toEqual([]);
  });

  it('names statements PostgreSQL refuses inside a transaction, before anything runs', () => {
    const problems = parseSqlScript('CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nVACUUM ANALYZE t;\nREINDEX INDEX CONCURRENTLY t_id;').problems;
    expect(problems).toEqual([
      'line 2: `CREATE INDEX CONCURRENTLY t_id` cannot run inside a transaction block (make the first line `-- belay:no-transaction`)',
      'line 3: `VACUUM ANALYZE t` cannot run inside a transaction block (make the first line `-- belay:no-transaction`)',
      'line 4: `REINDEX INDEX CONCURRENTLY t_id` cannot run inside a transaction block (make the first line `-- belay:no-transaction`)',
    ]);
    expect(parseSqlScript('-- belay:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);').problems).toEqual([]);
    expect(parseSqlScript('CREATE INDEX t_id ON t (id);\nALTER TABLE p DETACH PARTITION c;').problems).toEqual([]);
  });

  it('leaves transaction control to a no-transaction file', () => {
    const script = parseSqlScript('-- belay:no-transaction\nBEGIN;\nSELECT 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (id);');
    expect(script.transactional).toBe(false);
    expect(script.problems).toEqual([]);
    expect(script.statements).toHaveLength(4);
  });
});

describe('COPY … FROM stdin in a revision', () => {
  it.each([
    ['a transactional file', ''],
    ['a no-transaction file', '-- belay:no-transaction\n'],
  ])('is refused in %s, naming its line and its data, whatever the data holds', (_what, marker) => {
    const script = parseSqlScript(`${marker}CREATE TABLE c (code text, name text);\nCOPY c FROM stdin;\nCI\tCôte d'Ivoire\nXX\t$$; END; -- /*\n\\.\nCREATE INDEX c_code ON c (code);\n`);
    const at = marker ? 3 : 2;
    expect(script.problems).toEqual([
      `line ${at}: \`COPY c FROM stdin\` is followed by data (lines ${at + 1}–${at + 3}) that only psql can send: belay sends each statement to the server alone (load the data with INSERT, or with COPY … FROM a file the server reads)`,
    ]);
    expect(script.statements.map((s) => s.line)).toEqual([at - 1, at, at + 4]);
  });
});

describe('a no-transaction file that leaves a transaction open', () => {
  it('is a problem naming the BEGIN that is never ended; balanced blocks are fine', () => {
    const marker = '-- belay:no-transaction\n';
    expect(parseSqlScript(`${marker}BEGIN;\nUPDATE t SET a = 1;\nCOMMIT;\nCREATE INDEX CONCURRENTLY i ON t (a);\n`).problems).toEqual([]);
    expect(parseSqlScript(`${marker}BEGIN;\nSAVEPOINT s;\nROLLBACK TO s;\nEND;\n`).problems).toEqual([]);
    expect(parseSqlScript(`${marker}CREATE INDEX CONCURRENTLY i ON t (a);\nBEGIN;\nUPDATE t SET a = 1;\n`).problems).toEqual([
      'line 3: `BEGIN` opens a transaction that the file never ends (add its COMMIT: belay would otherwise write its record of the revision inside it)',
    ]);
  });
});

describe("a statement's code, as the server reads it", () => {
  it('drops comments (nested, and inside a dollar-quoted body) but not a `--` inside a string or an identifier; can empty the strings, but not a body\'s', () => {
    const text = "ALTER TABLE t ADD CHECK (a <> '--x'), DROP COLUMN b /* c /* d */ e */ -- f\n, DROP \"--y\"";
    expect(sqlCode(text)).toBe("ALTER TABLE t ADD CHECK (a <> '--x'), DROP COLUMN b    \n, DROP \"--y\"");
    expect(sqlCode(text, { blankStrings: true })).toBe("ALTER TABLE t ADD CHECK (a <> ''), DROP COLUMN b    \n, DROP \"--y\"");
    expect(sqlCode("SELECT E'it\\'s -- no', 'a''--b'", { blankStrings: true })).toBe("SELECT E'', ''");
    expect(sqlCode("DO $do$ BEGIN -- note\n EXECUTE 'DROP TABLE x'; END $do$", { blankStrings: true })).toBe("DO $do$ BEGIN  \n EXECUTE 'DROP TABLE x'; END $do$");
    // a comment never closed stays (the server refuses the statement), so the statements after it are not dropped unseen
    expect(splitSql('CREATE TABLE a (id int);\n/* never closed\nCREATE TABLE b (id int);').statements.map((s) => s.text)).toEqual(['CREATE TABLE a (id int)', '/* never closed\nCREATE TABLE b (id int);']);
    // nested comments close where PostgreSQL closes them; a `--` inside one is nothing
    expect(texts('SELECT 1;\n/* a /* b */ -- c */\n/* d -- */')).toEqual(['SELECT 1']);
    // a `$` inside a word or after a parameter's digits is no dollar quote
    expect(sqlCode('SELECT a$b$ FROM t WHERE x = $1 -- c')).toBe('SELECT a$b$ FROM t WHERE x = $1  ');
  });
});
