-- One URL parser, read by the configuration (the endpoint URL), the endpoint
-- rules (their parseURL function) and the cosocket transport.
--
--   local url = require "dms.url"
--   local u, err = url.parse("https://[::1]:8443/a/b?x=1#top")
--   -- u.scheme "https" (lower case), u.authority "[::1]:8443" (as written),
--   -- u.userinfo nil, u.host "::1" (no brackets), u.ipv6 true,
--   -- u.port 8443 (nil when the URL gives none), u.default_port 443 (nil for
--   -- schemes other than http and https), u.path "/a/b" ("" when absent),
--   -- u.query "x=1" (nil when there is no "?"), u.fragment "top" (nil when no "#")
--
-- The grammar is RFC 3986's "scheme://authority path [?query] [#fragment]":
-- the host is a registered name (unreserved characters, sub-delims and
-- percent-escapes), an IPv4 address or an IPv6 literal in brackets; the port
-- is decimal, 1 to 65535, and may be empty ("http://h:/" is "http://h/").
-- Whitespace and control characters are refused anywhere. Policy (which
-- schemes, whether user info, a query or a fragment are allowed) is the
-- caller's: parse() only splits and checks the grammar.
local type, tonumber, ipairs = type, tonumber, ipairs

local M = {}

local DEFAULT_PORTS = { http = 80, https = 443 }

-- "10.0.0.1" and the like: four decimal parts, each at most 255
function M.is_ipv4(host)
  if type(host) ~= "string" then return false end
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, n in ipairs({ a, b, c, d }) do
    if #n > 3 or tonumber(n) > 255 then return false end
  end
  return true
end

-- Splits `s`; a table as above, or nil and a message ("has no host", ...)
-- that the caller prefixes with what the URL is for.
function M.parse(s)
  if type(s) ~= "string" then return nil, "must be a string" end
  if s:find("[%c%s]") then return nil, "contains spaces or control characters" end
  local scheme, rest = s:match("^(%a[%w+.%-]*)://(.*)$")
  if not scheme then return nil, "must start with a scheme (http:// or https://)" end
  scheme = scheme:lower()
  local authority, after = rest:match("^([^/?#]*)(.*)$")
  local path, query, fragment = after, nil, nil
  local hash = after:find("#", 1, true)
  if hash then path, fragment = after:sub(1, hash - 1), after:sub(hash + 1) end
  local qmark = path:find("?", 1, true)
  if qmark then path, query = path:sub(1, qmark - 1), path:sub(qmark + 1) end

  local userinfo, hostport = authority:match("^(.*)@([^@]*)$")
  if not userinfo then hostport = authority end
  local host, port_part, ipv6 = hostport:match("^%[([%x:.]+)%](.*)$")
  if host then
    ipv6 = true
    if not host:find(":", 1, true) then return nil, "has an invalid IPv6 address" end
  else
    host, port_part = hostport:match("^([^:]*)(.*)$")
    if host:find("[^%w%-._~%%!$&'()*+,;=]") then return nil, "has an invalid host" end
  end
  if host == "" then return nil, "has no host" end
  local port
  if port_part ~= "" then
    local digits = port_part:match("^:(%d*)$")
    if not digits then return nil, "has an invalid port" end
    if digits ~= "" then
      port = tonumber(digits)
      if #digits > 5 or port < 1 or port > 65535 then return nil, "port out of range" end
    end
  end
  return {
    scheme = scheme, authority = authority, userinfo = userinfo,
    host = host, ipv6 = ipv6 == true, port = port, default_port = DEFAULT_PORTS[scheme],
    path = path, query = query, fragment = fragment,
  }
end

-- The host as it goes in a Host header or a URL: IPv6 literals in brackets.
function M.host_literal(u)
  return u.ipv6 and ("[" .. u.host .. "]") or u.host
end

return M
