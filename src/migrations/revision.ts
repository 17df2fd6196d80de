/** A revision as found on disk. */
export interface Revision {
  /** Full name, e.g. "0023_v2_mobile_schema_updates". */
  name: string;
  /** The leading number as written, e.g. "0023". */
  number: string;
  kind: 'sql' | 'module';
  files: RevisionFiles;
  /** sha256 of each file, keyed by file name. */
  fileChecksums: Record<string, string>;
  /** sha256 over the sorted "file sha256" lines: one value to compare. */
  checksum: string;
}

export interface RevisionFiles {
  /** For kind "sql": the .up.sql file. For kind "module": the module. */
  up: string;
  down: string | undefined;
  verify: string | undefined;
}


export const REVISION_NAME = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)$/;
