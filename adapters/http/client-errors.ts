/**
 * Requests Node's HTTP parser refuses before Fastify sees them (Fastify's
 * `clientErrorHandler` option): a request line and headers over Node's limit (16 KiB
 * unless `--max-http-header-size` says otherwise), and malformed HTTP. Fastify's own
 * handler answers these with `431` or `400` and a body that is not a problem document;
 * this one answers with problem documents like every other error, then closes the
 * connection (its framing can no longer be trusted):
 *
 * - headers too large (`HPE_HEADER_OVERFLOW`): `413 PAYLOAD_TOO_LARGE` with `limitBytes`
 *   (the contract's codes are a closed table: the size code, for a URL or headers
 *   rather than a body; the detail says which);
 * - any other parse failure: `400 VALIDATION`, "the request is not valid HTTP/1.1", with
 *   what was wrong when Node says (a bad `Content-Length`, a character not allowed in a
 *   header...);
 * - a request that did not arrive in time (`ERR_HTTP_REQUEST_TIMEOUT`): `408`, as
 *   Fastify answers it (no code of the table fits a connection that went quiet);
 * - a connection already reset or destroyed: nothing.
 */
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { FleetError } from '../../runtime/index.js';
import { PROBLEM_MEDIA_TYPE, toProblem } from './problem.js';

/** What was wrong, by Node's parser error code (llhttp). */
const REASONS: Record<string, string> = {
  HPE_INVALID_CONTENT_LENGTH: 'its Content-Length is not a valid length',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'it has both Content-Length and Transfer-Encoding',
  HPE_INVALID_TRANSFER_ENCODING: 'its Transfer-Encoding is not valid',
  HPE_INVALID_HEADER_TOKEN: 'a header name or value holds a character HTTP does not allow',
  HPE_INVALID_METHOD: 'its method is not a valid HTTP method',
  HPE_INVALID_URL: 'its URL is not valid',
  HPE_INVALID_VERSION: 'its HTTP version is not valid',
  HPE_INVALID_CHUNK_SIZE: 'a chunk size is not valid',
  HPE_CR_EXPECTED: 'a line does not end with CRLF',
  HPE_LF_EXPECTED: 'a line does not end with CRLF',
};

/** Writes `status` with a JSON `body` on a raw socket, then closes it. */
function answer(socket: Duplex, status: number, type: string, body: string): void {
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * For the host's `Fastify({ clientErrorHandler })` option (the standalone server sets
 * it): answers what Node's HTTP parser refuses with problem documents (see above).
 */
export function fleetClientErrorHandler(
  this: FastifyInstance,
  error: Error & { code?: string },
  socket: Duplex,
): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  this.log.debug({ err: error }, 'client error');
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    answer(
      socket,
      408,
      'application/json',
      '{"error":"Request Timeout","message":"Client Timeout","statusCode":408}',
    );
    return;
  }
  const fleetError =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new FleetError(
          'PAYLOAD_TOO_LARGE',
          `the request line and headers are larger than ${maxHeaderSize} bytes: send long values in a body`,
          { extra: { limitBytes: maxHeaderSize } },
        )
      : new FleetError(
          'VALIDATION',
          `the request is not valid HTTP/1.1${REASONS[error.code ?? ''] ? `: ${REASONS[error.code!]}` : ''}`,
        );
  const { problem } = toProblem(fleetError);
  answer(socket, problem.status, PROBLEM_MEDIA_TYPE, JSON.stringify(problem));
}
