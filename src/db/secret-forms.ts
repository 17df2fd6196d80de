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

/** The ways a secret is written out: plainly, percent-encoded (upper- or lower-case hex), form-encoded, JSON-escaped. */
export function secretSpellings(secret: string): string[] {
  const encoded = encodeURIComponent(secret);
  const spellings = [secret, encoded, encoded.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase()), encoded.replaceAll('%20', '+'), JSON.stringify(secret).slice(1, -1)];
  return [...new Set(spellings.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length);
}

/** The form of a URL, in belay's hints: its PASSWORD placeholder is left as it is by maskCredentials. */
export const EXAMPLE_URL = 'postgresql://USER:PASSWORD@HOST:5432/DATABASE';

/**
 * Mask whatever stands where a URL or a connection string keeps a password,
 * known or not: `scheme://user:PW@`, `scheme:/user:PW@`, `user:PW@host`, `password=PW`,
 * `password='PW'`, `"password":"PW"`; but not EXAMPLE_URL's placeholder.
 */
export function maskCredentials(text: string): string {
  return text
    .replace(/([A-Za-z][A-Za-z0-9+.-]*:\/{0,3}[^\s:/@'"<>]*:)(?!PASSWORD@HOST:)[^\s'"<>/]+@/g, '$1***@')
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
  return scrubWith(value, secrets.filter((secret) => secret.length > 0).flatMap(secretSpellings));
}

function scrubWith<T>(value: T, spellings: readonly string[]): T {
  if (typeof value === 'string') {
    let text: string = value;
    for (const spelling of spellings) text = text.replaceAll(spelling, '***');
    return maskCredentials(text) as T;
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrubWith(item, spellings)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = scrubWith(item, spellings);
  return out as T;
}
