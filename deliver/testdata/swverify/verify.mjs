// Verifies one rswebhooks notification with the reference Standard Webhooks
// library. Input on stdin: {"secret": "<raw secret>", "headers": {...}, "body": "<exact body>"}.
// Exit 0 and print "ok" when valid; exit 1 with the library's error otherwise.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, headers, body } = JSON.parse(input);
const wh = new Webhook("whsec_" + Buffer.from(secret, "utf8").toString("base64"));
try {
  wh.verify(body, headers);
  console.log("ok");
} catch (e) {
  console.error("invalid:", e.message);
  process.exit(1);
}
