-- JSON.check(text, what): raise BADARG unless `text` is exactly one JSON value as RFC 8259 defines
-- it, with no object holding the same key twice (at any depth) and nesting at most
-- LIMITS.json_depth deep. cjson.decode lets through NaN, Infinity, hex, leading zeros and '+',
-- '1.', raw control characters, invalid UTF-8 and anything after a NUL; a client decoding such a
-- text later fails after the call committed. One pass over the bytes, no writes: runs of plain
-- characters are skipped with string.find, and a table is made per object (its keys) only.
local JSON = {}

-- The bytes that end a run of plain string characters: quote, backslash, control characters
-- (NUL included: %z) and every non-ASCII byte (checked as UTF-8).
JSON.SPECIAL = '["\\%z\1-\31\128-\255]'
-- The escapes other than \u, by the byte after the backslash: " \ / b f n r t.
JSON.ESCAPES = {[34] = true, [92] = true, [47] = true, [98] = true, [102] = true, [110] = true,
  [114] = true, [116] = true}
-- Well-formed UTF-8 sequences (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF),
-- by lead byte range, as anchored patterns.
JSON.UTF8 = {
  '^[\194-\223][\128-\191]', '^\224[\160-\191][\128-\191]', '^[\225-\236\238\239][\128-\191][\128-\191]',
  '^\237[\128-\159][\128-\191]', '^\240[\144-\191][\128-\191][\128-\191]',
  '^[\241-\243][\128-\191][\128-\191][\128-\191]', '^\244[\128-\143][\128-\191][\128-\191]',
}

-- The literals, by their first byte.
JSON.LITERALS = {[116] = 'true', [102] = 'false', [110] = 'null'}

-- JSON.fail(what, reason, at): the BADARG refusal naming the argument and the byte offset.
function JSON.fail(what, reason, at)
  raise(ERR.BADARG, what .. ' is not valid JSON: ' .. reason .. ' at byte ' .. (at - 1))
end

-- JSON.utf8_end(text, at): the last position of the well-formed UTF-8 character at `at`, or nil.
function JSON.utf8_end(text, at)
  for index = 1, #JSON.UTF8 do
    local _, last = string.find(text, JSON.UTF8[index], at)
    if last then
      return last
    end
  end
  return nil
end

-- JSON.string_end(text, quote, what): the position just after the string whose opening quote is
-- at `quote`, and whether it holds an escape; every escape and character is checked.
function JSON.string_end(text, quote, what)
  local at, escaped = quote + 1, false
  while true do
    local found = string.find(text, JSON.SPECIAL, at)
    if not found then
      JSON.fail(what, 'unterminated string', quote)
    end
    local byte = string.byte(text, found)
    if byte == 34 then
      return found + 1, escaped
    elseif byte == 92 then
      escaped = true
      local kind = string.byte(text, found + 1)
      if kind == 117 then
        local hex = string.match(text, '^%x%x%x%x', found + 2)
        local code = hex and tonumber(hex, 16)
        if not code then
          JSON.fail(what, 'bad \\u escape', found)
        elseif code >= 0xDC00 and code <= 0xDFFF then
          JSON.fail(what, 'lone low surrogate escape', found)
        elseif code >= 0xD800 and code <= 0xDBFF then
          if not string.find(text, '^\\u[dD][c-fC-F]%x%x', found + 6) then
            JSON.fail(what, 'high surrogate escape without its low surrogate', found)
          end
          at = found + 12
        else
          at = found + 6
        end
      elseif JSON.ESCAPES[kind] then
        at = found + 2
      else
        JSON.fail(what, 'bad escape', found)
      end
    elseif byte < 32 then
      JSON.fail(what, 'raw control character in a string', found)
    else
      local last = JSON.utf8_end(text, found)
      if not last then
        JSON.fail(what, 'invalid UTF-8', found)
      end
      at = last + 1
    end
  end
end

-- JSON.key(text, at, keys, what): read the object key whose quote is at `at` (after whitespace),
-- refuse a duplicate in `keys` (the keys of this object so far, decoded), and return the position
-- of the member's value (after the colon and whitespace).
function JSON.key(text, at, keys, what)
  if string.byte(text, at) ~= 34 then
    JSON.fail(what, 'expected an object key', at)
  end
  local after, escaped = JSON.string_end(text, at, what)
  local key = escaped and cjson.decode(string.sub(text, at, after - 1)) or string.sub(text, at + 1, after - 2)
  if keys[key] then
    JSON.fail(what, 'duplicate object key ' .. string.sub(text, at, after - 1), at)
  end
  keys[key] = true
  local _, colon = string.find(text, '^[ \t\n\r]*:[ \t\n\r]*', after)
  if not colon then
    JSON.fail(what, 'expected : after an object key', after)
  end
  return colon + 1
end

-- JSON.scalar_end(text, at, byte, what): the position just after the number or literal at `at`
-- (its first byte `byte`); what follows is checked by the caller.
function JSON.scalar_end(text, at, byte, what)
  if byte == 45 or (byte >= 48 and byte <= 57) then
    local _, last = string.find(text, '^%-?0', at)
    if not last then
      _, last = string.find(text, '^%-?[1-9]%d*', at)
      if not last then
        JSON.fail(what, 'bad number', at)
      end
    end
    local _, fraction = string.find(text, '^%.%d+', last + 1)
    last = fraction or last
    local _, exponent = string.find(text, '^[eE][%-+]?%d+', last + 1)
    return (exponent or last) + 1
  end
  local literal = JSON.LITERALS[byte]
  if literal and string.sub(text, at, at + #literal - 1) == literal then
    return at + #literal
  end
  JSON.fail(what, 'unexpected character', at)
end

-- JSON.check(text, what): see the top of this file. `text` is a string.
function JSON.check(text, what)
  local stack, depth = {}, 0 -- per open container: its keys table (object) or false (array)
  local _, skip = string.find(text, '^[ \t\n\r]*', 1)
  local at = skip + 1
  while true do
    -- A value starts at `at`.
    local byte = string.byte(text, at)
    if not byte then
      JSON.fail(what, 'expected a value', at)
    end
    local closed = true
    if byte == 123 or byte == 91 then
      if depth == LIMITS.json_depth then
        JSON.fail(what, 'nested deeper than ' .. LIMITS.json_depth, at)
      end
      _, skip = string.find(text, '^[ \t\n\r]*', at + 1)
      if string.byte(text, skip + 1) == byte + 2 then -- {} or []
        at = skip + 2
      else
        depth = depth + 1
        if byte == 123 then
          stack[depth] = {}
          at = JSON.key(text, skip + 1, stack[depth], what)
        else
          stack[depth] = false
          at = skip + 1
        end
        closed = false
      end
    elseif byte == 34 then
      at = JSON.string_end(text, at, what)
    else
      at = JSON.scalar_end(text, at, byte, what)
    end
    -- After a value: close containers until a comma asks for the next value.
    while closed do
      _, skip = string.find(text, '^[ \t\n\r]*', at)
      at = skip + 1
      if depth == 0 then
        if at <= #text then
          JSON.fail(what, 'unexpected text after the value', at)
        end
        return
      end
      local keys = stack[depth]
      byte = string.byte(text, at)
      if byte == 44 then
        _, skip = string.find(text, '^[ \t\n\r]*', at + 1)
        at = keys and JSON.key(text, skip + 1, keys, what) or skip + 1
        closed = false
      elseif (byte == 125 and keys) or (byte == 93 and keys == false) then
        stack[depth] = nil
        depth = depth - 1
        at = at + 1
      else
        JSON.fail(what, keys and 'expected , or } in an object' or 'expected , or ] in an array', at)
      end
    end
  end
end
