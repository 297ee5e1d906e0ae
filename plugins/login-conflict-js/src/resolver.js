// The component glue: hookbox's host imports in, the `resolver` export out.
// componentize-js already hands the WIT types over as plain objects in the
// shape `login_conflict.js` works on; an `err(summary)` result is a thrown string.

import { log, configGet } from 'hookbox:okta-import/host@0.1.0';

import { resolve as resolveLogin, ResolveError } from './login_conflict.js';

// A host call costs this toolchain's glue several microseconds (about 15 % of
// a warm call for the four settings read per request), and a tenant's settings
// are fixed for an instance's lifetime (see `config-get` in the WIT), so each
// is asked for once per instance.
const settings = new Map();
const host = {
  log,
  configGet(key) {
    if (!settings.has(key)) settings.set(key, configGet(key));
    return settings.get(key);
  },
};

export const resolver = {
  resolve(request) {
    try {
      return resolveLogin(request, host);
    } catch (e) {
      if (e instanceof ResolveError) throw e.message;
      throw e;
    }
  },
};
