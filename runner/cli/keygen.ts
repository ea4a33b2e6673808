// npm run keygen: a new age key pair for backup encryption.
//   BACKUP_ENCRYPTION_KEY (public recipient): a Worker var; add it to a comma list to rotate.
//   AGE_IDENTITY (private key): a Worker secret for verify-full and restore; keep an offline copy.
import { ageKeyPair } from "../dev/secrets.ts";

const { identity, recipient } = await ageKeyPair();
console.log(`# created: ${new Date().toISOString()}
# public key (recipient): put it in BACKUP_ENCRYPTION_KEY (comma-separate several, e.g. ops key + escrow key)
BACKUP_ENCRYPTION_KEY=${recipient}
# private key (identity): \`wrangler secret put AGE_IDENTITY\`, and store a copy offline. Losing it loses every backup made to this recipient.
AGE_IDENTITY=${identity}`);
