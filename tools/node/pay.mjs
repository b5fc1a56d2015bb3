// Pay one x402-priced URL with the official x402 TypeScript SDK (@x402/fetch + @x402/evm, viem's
// local account) on the EVM `exact` scheme, and print what happened as one line of JSON.
//
//   X402_PAYER_KEY=0x… node pay.mjs --url http://127.0.0.1:8420/c/echo/x \
//       --network eip155:31337 --asset 0xToken --max 10000 [--method GET] [--timeout 60]
//
// The key comes from the environment (never the command line, which `ps` shows). The client
// needs no RPC: it signs an EIP-3009 authorisation with the EIP-712 domain the 402 names.
// `--asset` and `--max` are the spend control: the SDK pays only assets it knows or is told
// about, capped per payment (atomic units).
// Output: {"status", "body", "paymentResponse" (decoded PAYMENT-RESPONSE or null), "payer"};
// exit 0 when a response came back (whatever its status), 1 on an error (printed as {"error"}).

import { parseArgs } from "node:util";
import { wrapFetchWithPaymentFromConfig, decodePaymentResponseHeader } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { privateKeyToAccount } from "viem/accounts";

function fail(message) {
  process.stdout.write(JSON.stringify({ error: String(message) }) + "\n");
  process.exit(1);
}

async function main() {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      network: { type: "string", default: "eip155:*" },
      asset: { type: "string" },
      max: { type: "string" },
      method: { type: "string", default: "GET" },
      timeout: { type: "string", default: "60" },
    },
    strict: true,
  });
  const key = process.env.X402_PAYER_KEY;
  if (!values.url || !values.asset || !values.max || !key) {
    fail("usage: X402_PAYER_KEY=0x… node pay.mjs --url URL --network eip155:N --asset 0xTOKEN --max ATOMIC");
  }
  const account = privateKeyToAccount(key);
  const fetchWithPayment = wrapFetchWithPaymentFromConfig(fetch, {
    schemes: [{ network: "eip155:*", client: new ExactEvmScheme(account) }],
    spendControls: {
      allowedAssets: [{ network: values.network, asset: values.asset, maxAmountPerPayment: values.max }],
    },
  });
  const response = await fetchWithPayment(values.url, {
    method: values.method,
    signal: AbortSignal.timeout(Number(values.timeout) * 1000),
  });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const header = response.headers.get("payment-response");
  const out = {
    status: response.status,
    body,
    paymentResponse: header ? decodePaymentResponseHeader(header) : null,
    payer: account.address,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((error) => fail(error && error.stack ? error.stack : error));
