// The component glue: hookbox's host imports in, the `resolver` and
// `event-handler` exports out (WIT hookbox:okta-import@0.2.0, world
// `import-and-event-hook`). componentize-js already hands the WIT types over
// as plain objects in the shape `login_conflict.js` works on; an imported
// function's `err(e)` arrives as a thrown error whose `payload` is `e`, and a
// thrown string becomes the export's `err(summary)`.

import { log, configGet } from 'hookbox:okta-import/host@0.2.0';
import { claim, ownerOf, release } from 'hookbox:okta-import/claims@0.2.0';
import { findUser } from 'hookbox:okta-import/directory@0.2.0';

import {
  DirectoryError,
  ResolveError,
  StoreError,
  handle as handleEvent,
  resolve as resolveLogin,
} from './login_conflict.js';

/** The WIT error carried by an import's thrown `err`, or rethrows anything else. */
function payload(e) {
  if (e !== null && typeof e === 'object' && 'payload' in e) return e.payload;
  throw e;
}

function store(call) {
  try {
    return call();
  } catch (e) {
    throw new StoreError(payload(e).tag);
  }
}

// A host call costs this toolchain's glue several microseconds (about 15 % of
// a warm call for the settings read per request), and a tenant's settings
// are fixed for an instance's lifetime (see `config-get` in the WIT), so each
// is asked for once per instance.
const settings = new Map();
const host = {
  log,
  configGet(key) {
    if (!settings.has(key)) settings.set(key, configGet(key));
    return settings.get(key);
  },
  claim: (key, owner) => store(() => claim(key, owner)),
  ownerOf: (key) => store(() => ownerOf(key)),
  release: (key, owner) => store(() => release(key, owner)),
  findUser(login) {
    try {
      return findUser(login);
    } catch (e) {
      throw new DirectoryError(payload(e).tag);
    }
  },
};

function asSummary(e) {
  if (e instanceof ResolveError) throw e.message;
  throw e;
}

export const resolver = {
  resolve(request) {
    try {
      return resolveLogin(request, host);
    } catch (e) {
      return asSummary(e);
    }
  },
};

export const eventHandler = {
  handle(event) {
    try {
      handleEvent(event, host);
    } catch (e) {
      asSummary(e);
    }
  },
};
