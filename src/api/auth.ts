/**
 * Bearer-token check of the mutating routes.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { ForbiddenError, UnauthorizedError } from "./errors.ts";

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * Checks `Authorization: Bearer <token>` against the configured token in constant time
 * (both sides are hashed first, so lengths do not leak either). Throws ForbiddenError when
 * no token is configured (the routes are disabled) and UnauthorizedError when it is missing
 * or wrong.
 */
export async function requireToken(req: Request, configured: string | undefined): Promise<void> {
  if (configured === undefined || configured === "") {
    throw new ForbiddenError(
      "Cannot change series through the API: current API_TOKEN is unset, so mutating routes are disabled; " +
        "set API_TOKEN and send it as Authorization: Bearer <token>",
    );
  }
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) {
    throw new UnauthorizedError("Cannot authorize: expected the header Authorization: Bearer <API_TOKEN>");
  }
  const [a, b] = await Promise.all([digest(match[1]), digest(configured)]);
  if (!timingSafeEqual(a, b)) {
    throw new UnauthorizedError("Cannot authorize: the bearer token is wrong");
  }
}
