/** Decode every %XX run as UTF-8 bytes, leaving malformed escapes as they are. */
function percentDecode(text: string): string {
  return text.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Buffer.from(run.replaceAll('%', ''), 'hex');
    return bytes.toString('utf8');
  });
}

/** The readings of a text a password could hide in: as is, percent-decoded (up to twice), form-decoded. */
function readings(text: string): string[] {
  const once = percentDecode(text);
  return [text, once, percentDecode(once), percentDecode(text.replaceAll('+', ' '))];
}

/** Whether `text` holds one of the secrets, plainly or percent-encoded (as in a URL). */
export function carriesSecret(text: string, secrets: readonly string[]): boolean {
  const real = secrets.filter((secret) => secret.length > 0);
  if (real.length === 0) return false;
  return readings(text).some((reading) => real.some((secret) => reading.includes(secret)));
}

/** A hex digit pattern for `byte` that matches either case: c3 as [cC]3. */
function hexEitherCase(byte: number): string {
  return byte.toString(16).padStart(2, '0').replace(/[a-f]/g, (digit) => `[${digit}${digit.toUpperCase()}]`);
}

/** The ways one character of a secret is written out: plainly, JSON-escaped, its UTF-8 bytes percent-encoded (hex in either case), a space as `+`. */
function characterForms(char: string): string[] {
  const forms = [char, JSON.stringify(char).slice(1, -1), ...(char === ' ' ? ['+'] : [])].map((form) => form.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&'));
  const encoded = [...Buffer.from(char, 'utf8')].map((byte) => `%${hexEitherCase(byte)}`).join('');
  return [encoded, ...new Set(forms)];
}

/**
 * Every spelling of the secrets, longest first: each character as it is or
 * encoded, as a URL written by hand, by encodeURIComponent or by another
 * library's encoder spells it; nothing that does not decode to a secret.
 */
const patterns = new WeakMap<readonly string[], RegExp | undefined>();

function secretsPattern(secrets: readonly string[]): RegExp | undefined {
  // the journal scrubs every line with the same list: its pattern is made once
  if (patterns.has(secrets)) return patterns.get(secrets);
  const pattern = makeSecretsPattern(secrets);
  patterns.set(secrets, pattern);
  return pattern;
}

function makeSecretsPattern(secrets: readonly string[]): RegExp | undefined {
  const real = [...new Set(secrets.filter((secret) => secret.length > 0))].sort((a, b) => b.length - a.length);
  if (real.length === 0) return undefined;
  return new RegExp(real.map((secret) => [...secret].map((char) => `(?:${characterForms(char).join('|')})`).join('')).join('|'), 'g');
}

/** The form of a URL, in belay's hints: its PASSWORD placeholder is left as it is by maskCredentials. */
export const EXAMPLE_URL = 'postgresql://USER:PASSWORD@HOST:5432/DATABASE';

// a token, not a role name: a known token's prefix (GitHub, GitLab, Slack, OpenAI, AWS, npm, PyPI), or 32 or more letters and digits mixed (hex, base62, a UUID)
const TOKEN_USER = /^(?:gh[oprsu]_|github_pat_|glpat-|xox[abeoprs]-|sk-|AKIA|ASIA|npm_|pypi-)|^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9-]{32,}$/;

const PASSWORD_WORD = /password/i;

/**
 * Mask whatever stands where a URL or a connection string keeps a password,
 * known or not: `scheme://user:PW@`, `scheme:/user:PW@`, `user:PW@host`, `password=PW`,
 * `password='PW'`, `"password":"PW"`; but not EXAMPLE_URL's placeholder. A
 * URL's user part alone (`scheme://TOKEN@`) is masked when it is a token.
 */
export function maskCredentials(text: string): string {
  // every pattern below needs an @ or the word password: most texts (names, SQL, hashes) have neither
  if (!text.includes('@') && !PASSWORD_WORD.test(text)) return text;
  return text
    .replace(/([A-Za-z][A-Za-z0-9+.-]*:\/{0,3}[^\s:/@'"<>]*:)(?!PASSWORD@HOST:)[^\s'"<>/]+@/g, '$1***@')
    .replace(/([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^\s:/@'"<>]+)@/g, (url: string, scheme: string, user: string) => (TOKEN_USER.test(user) ? `${scheme}***@` : url))
    .replace(/(^|[\s'"(=,])([^\s:/@'"<>()=,]+:)(?!PASSWORD@HOST:)[^\s'"<>/]+@(?=[\w[.-])/g, '$1$2***@')
    .replace(/(password["']?\s*[=:]\s*)("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&'",;]+)/gi, (_, key: string, value: string) => {
      const quote = /^["']/.test(value) ? value.charAt(0) : '';
      return `${key}${quote}***${quote}`;
    });
}

/**
 * Replace every secret inside a printed, logged or recorded value, however
 * deep: each known secret in every spelling (plain, percent-encoded,
 * JSON-escaped), and whatever stands in a URL's or connection string's
 * password place, known or not.
 */
export function scrub<T>(value: T, secrets: readonly string[]): T {
  return scrubWith(value, secretsPattern(secrets));
}

function scrubWith<T>(value: T, spellings: RegExp | undefined): T {
  if (typeof value === 'string') return maskCredentials(spellings ? value.replace(spellings, '***') : value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubWith(item, spellings)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubWith(item, spellings);
  return out as T;
}
