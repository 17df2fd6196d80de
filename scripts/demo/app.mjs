// The seed's application, small: V1 registration against account.users.
// Its V1 serializer knows the V1 fields only and answers 500 when the table
// grows the V2 columns of 0023: the bug of the pre-deployment checklist.
//   DATABASE_URL  where the account schema lives
//   PORT          0 picks a free port; the first stdout line is "listening PORT"
//   DEMO_BROKEN_BEFORE=1  registration already answers 500 (the unfixed 500)
//   DEMO_FIXED=1          the fixed serializer: ignores fields it does not know
import http from 'node:http';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4, connectionTimeoutMillis: 5000 });
pool.on('error', () => {});
const V1_FIELDS = new Set(['id', 'email', 'password_hash', 'is_active', 'date_joined', 'last_login', 'email_verified', 'status']);
let restarts = 0;

function serializeV1(row) {
  const unknown = Object.keys(row).filter((key) => !V1_FIELDS.has(key));
  if (unknown.length > 0 && process.env.DEMO_FIXED !== '1') {
    throw new Error(`V1 serializer: unexpected fields ${unknown.join(', ')}`);
  }
  return { id: String(row.id), email: row.email, active: row.is_active };
}

async function readBody(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

const send = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'GET' && req.url === '/healthz') return send(res, 200, { ok: true, restarts });
    if (req.method === 'POST' && req.url === '/admin/restart') {
      restarts++;
      return send(res, 200, { restarted: restarts });
    }
    if (req.method === 'POST' && req.url === '/api/v1/onboarding/register/complete') {
      if (process.env.DEMO_BROKEN_BEFORE === '1') throw new Error('RegisterCompleteView: NoneType has no attribute "profile"');
      const { email = `probe-${Date.now()}@example.com` } = await readBody(req);
      const client = await pool.connect();
      try {
        // a health probe must leave no trace: register inside a transaction and roll it back
        await client.query('BEGIN');
        const { rows } = await client.query(
          `INSERT INTO account.users (email, password_hash) VALUES ($1, 'probe') RETURNING *`,
          [email],
        );
        await client.query(
          `INSERT INTO account.onboarding_registrations (email, step, completed_at, user_id)
           VALUES ($1, 'completed', now(), $2)`,
          [email, rows[0].id],
        );
        const user = serializeV1(rows[0]);
        await client.query('ROLLBACK');
        return send(res, 201, { user });
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    }
    return send(res, 404, { error: 'not found' });
  } catch (error) {
    return send(res, 500, { error: error.message });
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => pool.end().finally(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
