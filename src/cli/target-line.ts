import type { TargetInfo } from '../api/options.js';

/** Where the connection came from, in words. */
export function sourcePhrase(target: TargetInfo): string {
  switch (target.source) {
    case 'embedded cluster':
      return 'the project-local embedded cluster under .belay/, because no connection settings were given (--database-url, DATABASE_URL, databaseUrl in the config, PG* variables)';
    case '--embedded':
      return 'the project-local embedded cluster under .belay/ (--embedded)';
    case 'libpq environment':
      return 'from the PG* variables';
    default:
      return `from ${target.source}`;
  }
}

/** The first line of a changing command: what it is about to change. */
export function firstLine(command: string, target: TargetInfo): string {
  return `belay ${command} on ${target.database} (${target.embedded ? (target.source === '--embedded' ? 'embedded cluster, --embedded' : 'embedded cluster: no connection settings given') : sourcePhrase(target)})`;
}

/** The last line of a changing command: what it worked on. */
export function lastLine(target: TargetInfo): string {
  return `target ${target.database}, ${sourcePhrase(target)}`;
}
