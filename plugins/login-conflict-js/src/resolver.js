// The component glue: hookbox's host imports in, the `resolver` export out.
// componentize-js already hands the WIT types over as plain objects in the
// shape `login_conflict.js` works on; an `err(summary)` result is a thrown string.

import { log, configGet } from 'hookbox:okta-import/host@0.1.0';

import { resolve as resolveLogin, ResolveError } from './login_conflict.js';

const host = { log, configGet };

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
