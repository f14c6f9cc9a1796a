#!/usr/bin/env node
// Committed launcher so `npx weft` works right after `npm ci` on a fresh
// clone: the compiled entry (dist/) does not exist yet when npm links bins.
import "../dist/bin/weft.js";
