"""Layer 1, the Lua library as data: render the template (render), read the function headers
(protocol) and write docs/PROTOCOL.md from them (protocol_doc), find lua/ and migrations/
(paths), load the library onto a Redis and report what is deployed (deploy, info), apply data
migrations (migrate). Imports only the base modules (constants, errors, keys, replies, version).
"""
