import { describe, expect, it } from 'vitest';
import { searchPathEntries } from '../src/db/search-path.js';

describe('search_path entries', () => {
  it('unquotes entries and resolves "$user" to the role', () => {
    expect(searchPathEntries('"$user", public', 'belay')).toEqual(['belay', 'public']);
    expect(searchPathEntries(' "My ""odd"", schema" ,app', 'x')).toEqual(['My "odd", schema', 'app']);
    expect(searchPathEntries('', 'x')).toEqual([]);
    // as PostgreSQL reads a setting: an unquoted name folded to lower case, a quoted one as it is
    expect(searchPathEntries('App, "App"', 'x')).toEqual(['app', 'App']);
  });
});
