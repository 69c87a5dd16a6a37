// Starts dynalite on 127.0.0.1 and a free port (or PORT), in memory (or in
// --path DIR), and prints its URL on the first line of stdout.
//   node tools/dynalite/serve.js [--path DIR] [--port N]
'use strict'
const dynalite = require('dynalite')
const args = process.argv.slice(2)
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const server = dynalite({ path: opt('--path'), createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })
server.listen(Number(opt('--port') || 0), '127.0.0.1', () => {
  console.log('http://127.0.0.1:' + server.address().port)
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
