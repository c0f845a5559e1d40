// The app side of the Wallet Standard: discover wallets, sign in with `solana:signIn`, or fall
// back to `solana:signMessage`. The secret key never leaves the wallet; we only get a signature.

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** Bitcoin-style base58, as Solana writes keys and signatures. */
export function base58(bytes) {
  const digits = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i += 1) {
      carry += digits[i] * 256;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) { digits.push(carry % 58); carry = Math.floor(carry / 58); }
  }
  let out = "";
  for (const byte of bytes) { if (byte !== 0) break; out += "1"; }
  for (let i = digits.length - 1; i >= 0; i -= 1) out += ALPHABET[digits[i]];
  return out;
}

const wallets = new Set();
const listeners = new Set();

function isSolanaWallet(wallet) {
  const features = wallet.features || {};
  return ("solana:signIn" in features || "solana:signMessage" in features)
    && (wallet.chains || []).some((chain) => chain.startsWith("solana:"));
}

const registry = Object.freeze({
  register(...found) {
    for (const wallet of found) if (isSolanaWallet(wallet)) wallets.add(wallet);
    for (const listener of listeners) listener([...wallets]);
    return () => {};
  },
});

window.addEventListener("wallet-standard:register-wallet", ({ detail: callback }) => callback(registry));
window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: registry }));

/** Call ``listener`` with every Solana wallet now and whenever one registers. */
export function onWallets(listener) {
  listeners.add(listener);
  listener([...wallets]);
}

async function firstAccount(wallet) {
  if (wallet.accounts && wallet.accounts.length) return wallet.accounts[0];
  const connect = wallet.features["standard:connect"];
  if (!connect) throw new Error("This wallet cannot connect.");
  const { accounts } = await connect.connect();
  if (!accounts.length) throw new Error("The wallet shared no account.");
  return accounts[0];
}

/** Prove ownership of a wallet address: returns the body for /v1/auth/siws/verify. */
export async function signInWith(wallet, askNonce) {
  const account = await firstAccount(wallet);
  const issued = await askNonce(account.address);
  const signIn = wallet.features["solana:signIn"];
  if (signIn) {
    const [output] = await signIn.signIn({ ...issued.input });
    return {
      message: new TextDecoder().decode(output.signedMessage),
      signature: base58(output.signature),
      public_key: output.account.address,
    };
  }
  const [output] = await wallet.features["solana:signMessage"].signMessage({
    account, message: new TextEncoder().encode(issued.message),
  });
  return { message: issued.message, signature: base58(output.signature), public_key: account.address };
}
