-- JSON.check(text, what): raise BADARG unless `text` is exactly one JSON value as RFC 8259 defines
-- it, with no object holding the same key twice (at any depth) and nesting at most
-- LIMITS.json_depth deep. cjson.decode lets through NaN, Infinity, hex, leading zeros and '+',
-- '1.', raw control characters, invalid UTF-8 and anything after a NUL; a client decoding such a
-- text later fails after the call committed. No writes.
--
-- Bounded per call: the JSON arguments of one call hold at most LIMITS.json_values values and
-- object keys in all (LIMIT beyond), whatever their shape: the walk costs about 0.35 µs a value
-- or key, so 64 KiB of `[0,0,...]` (32,767 values) would take ~12 ms where 64 KiB of text takes
-- well under 1.
-- JSON.new_call() (check_root, the first check of every function) starts each call's budget.
--
-- Kept fast (Lua's pattern matcher costs ~10 ns a position tried, ~3 ns a byte in an anchored
-- run of a class whose first range matches, a plain string.find runs at memchr's speed): one
-- anchored run over the whole text finds any control character other than \t \n \r (invalid
-- anywhere) and any non-ASCII byte (then JSON.well_formed runs: one gsub per form of character
-- that occurs; the slow search for the first bad byte only on a refusal); the one pass over the
-- structure then finds the end of each string with plain finds (the closing quote, and the next
-- backslash, \t, \n, \r, each remembered until passed), makes no table per value, and one table
-- of keys per nesting depth (reused by the objects met at that depth).
local JSON = {}
do
  -- string.find, .byte, .sub, .gsub, set by the first check (the load-time sandbox has no
  -- `string`).
  local find, byte, sub, gsub, NOWHERE
  -- How many more JSON values this call's arguments may hold (JSON.new_call sets it).
  local values_left = 0

  -- JSON.new_call(): a new call: its JSON arguments may hold LIMITS.json_values values in all.
  function JSON.new_call()
    values_left = LIMITS.json_values
  end
  local function bind()
    find, byte, sub, gsub, NOWHERE = string.find, string.byte, string.sub, string.gsub, math.huge
  end

  -- The bytes JSON allows outside strings and in them, printable ASCII first (the pattern
  -- matcher tries a class's ranges in order): no control character but \t \n \r, no non-ASCII.
  local PLAIN_RUN = '^[ -\127\t\n\r]*'

  -- The bytes that never occur in UTF-8; the lead bytes of 4-byte forms, of 3-byte forms, of
  -- either, of 2-byte forms.
  local NEVER = {'\192', '\193', '\245', '\246', '\247', '\248', '\249', '\250', '\251', '\252',
    '\253', '\254', '\255'}
  local LEADS4 = {'\240', '\241', '\242', '\243', '\244'}
  local LEADS3 = {'\224', '\225', '\226', '\227', '\228', '\229', '\230', '\231', '\232', '\233',
    '\234', '\235', '\236', '\237', '\238', '\239'}
  local LEADS34 = {'\224', '\225', '\226', '\227', '\228', '\229', '\230', '\231', '\232', '\233',
    '\234', '\235', '\236', '\237', '\238', '\239', '\240', '\241', '\242', '\243', '\244'}
  local LEADS2 = {'\194', '\195', '\196', '\197', '\198', '\199', '\200', '\201', '\202', '\203',
    '\204', '\205', '\206', '\207', '\208', '\209', '\210', '\211', '\212', '\213', '\214',
    '\215', '\216', '\217', '\218', '\219', '\220', '\221', '\222', '\223'}
  -- The fast path (JSON.well_formed): each form of a multi-byte character, longest first, as the
  -- lead bytes one of which must occur for it to be looked for and the pattern of one character
  -- whose lead byte and continuation bytes are in range (the second byte's narrower range after
  -- E0, ED, F0, F4 is SECOND_BYTE's).
  local FORMS = {
    {LEADS4, '[\240-\244][\128-\191][\128-\191][\128-\191]'},
    {LEADS3, '[\224-\239][\128-\191][\128-\191]'},
    {LEADS2, '[\194-\223][\128-\191]'},
  }
  -- The lead bytes whose second byte has a narrower range than 80-BF, each with the pattern of
  -- the lead byte and a second byte out of that range: overlong 3- and 4-byte forms, surrogates,
  -- beyond U+10FFFF.
  local SECOND_BYTE = {
    {'\224', '\224[\128-\159]'},
    {'\237', '\237[\160-\191]'},
    {'\240', '\240[\128-\143]'},
    {'\244', '\244[\144-\191]'},
  }
  -- Each other way UTF-8 can break: a pattern, the offset of the bad byte in its match, whether
  -- it looks at the text's last 3 bytes only, and the bytes one of which must occur for it to
  -- match (nil: it always runs).
  local BROKEN = {
    {'^[\128-\191]', 0, false}, -- a continuation byte first
    {'[%z\1-\127][\128-\191]', 1, false}, -- a continuation byte after an ASCII byte
    {'[\194-\244][%z\1-\127\192-\255]', 0, false}, -- a lead byte without its continuation bytes
    {'[\224-\244][\128-\191][%z\1-\127\192-\255]', 0, false, LEADS34},
    {'[\240-\244][\128-\191][\128-\191][%z\1-\127\192-\255]', 0, false, LEADS4},
    {'[\194-\244]$', 0, true}, -- ... at the end of the text
    {'[\224-\244][\128-\191]$', 0, true, LEADS34},
    {'[\240-\244][\128-\191][\128-\191]$', 0, true, LEADS4},
    {'[\194-\223][\128-\191][\128-\191]', 0, false}, -- a lead byte with too many
    {'[\224-\239][\128-\191][\128-\191][\128-\191]', 0, false, LEADS34},
    {'[\240-\244][\128-\191][\128-\191][\128-\191][\128-\191]', 0, false, LEADS4},
  }
  for index = 1, #SECOND_BYTE do -- overlong 3-byte, surrogate, overlong 4-byte, beyond U+10FFFF
    BROKEN[#BROKEN + 1] = {SECOND_BYTE[index][2], 0, false, {SECOND_BYTE[index][1]}}
  end

  -- The escapes other than \u, by the byte after the backslash: " \ / b f n r t.
  local ESCAPES = {[34] = true, [92] = true, [47] = true, [98] = true, [102] = true, [110] = true,
    [114] = true, [116] = true}
  -- The literals, by their first byte.
  local LITERALS = {[116] = 'true', [102] = 'false', [110] = 'null'}

  -- occurs(text, chars): whether any of the one-byte strings occurs in `text`.
  local function occurs(text, chars)
    for index = 1, #chars do
      if find(text, chars[index], 1, true) then
        return true
      end
    end
    return false
  end

  -- JSON.fail(what, reason, at): the BADARG refusal naming the argument and the byte offset.
  local function fail(what, reason, at)
    raise(ERR.BADARG, what .. ' is not valid JSON: ' .. reason .. ' at byte ' .. (at - 1))
  end

  -- first_of(text, chars): the first position of any of the one-byte strings, or nil.
  local function first_of(text, chars)
    local first
    for index = 1, #chars do
      local at = find(text, chars[index], 1, true)
      if at and (not first or at < first) then
        first = at
      end
    end
    return first
  end

  -- JSON.well_formed(text): `text` with each character of 2 to 4 bytes that is well-formed UTF-8
  -- (RFC 3629) replaced by '.', or nil when a lead byte's second byte is out of its range. ASCII
  -- bytes stay as they are, so any non-ASCII byte left over is part of no well-formed character.
  -- One gsub per form whose lead bytes occur, longest form first (a match starts at a lead byte
  -- and takes its continuation bytes, and the '.' of an earlier form joins no later match; so
  -- when nothing non-ASCII is left, the text is ASCII and well-formed characters end to end).
  function JSON.well_formed(text)
    if not find then
      bind()
    end
    for index = 1, #SECOND_BYTE do
      if find(text, SECOND_BYTE[index][1], 1, true) and find(text, SECOND_BYTE[index][2]) then
        return nil
      end
    end
    for index = 1, #FORMS do
      if occurs(text, FORMS[index][1]) then
        text = gsub(text, FORMS[index][2], '.')
      end
    end
    return text
  end

  -- first_broken(text): the position of the first byte of `text` that breaks UTF-8. Rather
  -- than decode it character by character, look for each way it can be broken (NEVER, BROKEN),
  -- one pattern run each; a form's patterns run only when its lead bytes occur (plain finds tell).
  local function first_broken(text)
    local bad, seen = first_of(text, NEVER), {}
    local tail = sub(text, -3)
    for index = 1, #BROKEN do
      local pattern, offset, at_end, leads = BROKEN[index][1], BROKEN[index][2], BROKEN[index][3], BROKEN[index][4]
      if leads and seen[leads] == nil then
        seen[leads] = occurs(text, leads)
      end
      if not leads or seen[leads] then
        local at = find(at_end and tail or text, pattern)
        at = at and at + offset + (at_end and #text - #tail or 0)
        if at and (not bad or at < bad) then
          bad = at
        end
      end
    end
    return bad
  end

  -- JSON.check_utf8(text, what): raise BADARG unless `text` is well-formed UTF-8 (RFC 3629),
  -- naming the first bad byte. Text that JSON.well_formed reduces to ASCII is; any other is
  -- searched by first_broken.
  function JSON.check_utf8(text, what)
    if not find then
      bind()
    end
    local _, ascii = find(text, '^[^\128-\255]*')
    if ascii >= #text then
      return
    end
    local reduced = JSON.well_formed(text)
    if reduced then
      _, ascii = find(reduced, '^[^\128-\255]*')
      if ascii >= #reduced then
        return
      end
    end
    local bad = first_broken(text)
    if bad then
      raise(ERR.BADARG, what .. ' is not valid UTF-8 at byte ' .. (bad - 1))
    end
  end

  -- skip(text, at): the position of the first byte at or after `at` that is not JSON whitespace.
  local function skip(text, at)
    local next_byte = byte(text, at)
    if next_byte == 32 or next_byte == 10 or next_byte == 13 or next_byte == 9 then
      local _, last = find(text, '^[ \t\n\r]*', at)
      return last + 1
    end
    return at
  end

  -- The next backslash, \n, \r and \t at or after the last position asked for (NOWHERE when
  -- there is none): reset by each check, moved on by plain finds when passed.
  local next_backslash, next_newline, next_return, next_tab

  -- check_plain(text, from, before, what): no \n, \r or \t in [from, before) (the only control
  -- characters the whole-text run lets through: they are whitespace, but not inside a string).
  local function check_plain(text, from, before, what)
    if next_newline < from then
      next_newline = find(text, '\n', from, true) or NOWHERE
    end
    if next_return < from then
      next_return = find(text, '\r', from, true) or NOWHERE
    end
    if next_tab < from then
      next_tab = find(text, '\t', from, true) or NOWHERE
    end
    if next_newline < before or next_return < before or next_tab < before then
      fail(what, 'raw control character in a string', math.min(next_newline, next_return, next_tab))
    end
  end

  -- string_end(text, quote, what): the position just after the string whose opening quote is at
  -- `quote`, and whether it holds an escape.
  local function string_end(text, quote, what)
    local at, escaped = quote + 1, false
    while true do
      local close = find(text, '"', at, true)
      if not close then
        fail(what, 'unterminated string', quote)
      end
      if next_backslash < at then
        next_backslash = find(text, '\\', at, true) or NOWHERE
      end
      if next_backslash > close then
        check_plain(text, at, close, what)
        return close + 1, escaped
      end
      local slash = next_backslash
      check_plain(text, at, slash, what)
      escaped = true
      local kind = byte(text, slash + 1)
      if kind == 117 then
        local hex = find(text, '^%x%x%x%x', slash + 2) and tonumber(sub(text, slash + 2, slash + 5), 16)
        if not hex then
          fail(what, 'bad \\u escape', slash)
        elseif hex >= 0xDC00 and hex <= 0xDFFF then
          fail(what, 'lone low surrogate escape', slash)
        elseif hex >= 0xD800 and hex <= 0xDBFF then
          if not find(text, '^\\u[dD][c-fC-F]%x%x', slash + 6) then
            fail(what, 'high surrogate escape without its low surrogate', slash)
          end
          at = slash + 12
        else
          at = slash + 6
        end
      elseif ESCAPES[kind] then
        at = slash + 2
      else
        fail(what, 'bad escape', slash)
      end
    end
  end

  -- scalar_end(text, at, first, what): the position just after the number or literal at `at`
  -- (its first byte `first`); what follows is checked by the caller.
  local function scalar_end(text, at, first, what)
    if first == 45 or (first >= 48 and first <= 57) then
      local _, last = find(text, '^%-?%d+', at)
      if not last then
        fail(what, 'bad number', at)
      end
      local lead = first == 45 and at + 1 or at
      if last > lead and byte(text, lead) == 48 then
        fail(what, 'number with a leading zero', at)
      end
      local after = byte(text, last + 1)
      if after == 46 then
        _, last = find(text, '^%.%d+', last + 1)
        if not last then
          fail(what, 'bad number', at)
        end
        after = byte(text, last + 1)
      end
      if after == 101 or after == 69 then
        _, last = find(text, '^[eE][%-+]?%d+', last + 1)
        if not last then
          fail(what, 'bad number', at)
        end
      end
      return last + 1
    end
    local literal = LITERALS[first]
    if literal and sub(text, at, at + #literal - 1) == literal then
      return at + #literal
    end
    fail(what, 'unexpected character', at)
  end

  -- key(text, at, keys, serial, what): read the object key whose quote should be at `at`, refuse
  -- a key this object (number `serial`) has already (keys: key -> serial of the object that had
  -- it last, shared by the objects at one depth), and return the position of the member's value.
  -- over_budget(what): LIMIT: the call's JSON arguments hold more values and keys than
  -- LIMITS.json_values.
  local function over_budget(what)
    raise(ERR.LIMIT, what .. ': the JSON arguments of one call may hold at most ' .. LIMITS.json_values
      .. ' values and object keys in all')
  end

  local function key(text, at, keys, serial, what)
    values_left = values_left - 1 -- a key costs about as much as a value
    if values_left < 0 then
      over_budget(what)
    end
    -- The common key (no escape, no control character) and its colon in one find; any other
    -- the long way.
    local _, last, name = find(text, '^"([^"\\%c]*)"[ \t\n\r]*:', at)
    if not name then
      if byte(text, at) ~= 34 then
        fail(what, 'expected an object key', at)
      end
      local after, escaped = string_end(text, at, what)
      name = escaped and cjson.decode(sub(text, at, after - 1)) or sub(text, at + 1, after - 2)
      last = skip(text, after)
      if byte(text, last) ~= 58 then
        fail(what, 'expected : after an object key', last)
      end
    end
    if keys[name] == serial then
      fail(what, 'duplicate object key ' .. string.format('%q', sub(name, 1, 64)), at)
    end
    keys[name] = serial
    return skip(text, last + 1)
  end

  -- JSON.check(text, what): see the top of this file. `text` is a string.
  function JSON.check(text, what)
    if not find then
      bind()
    end
    local _, plain = find(text, PLAIN_RUN)
    if plain < #text then
      -- Non-ASCII text (or a control character): well-formed characters as '.', the rest plain
      -- as a whole; else find the first control character or bad byte the slow way.
      local reduced, reach = JSON.well_formed(text), -1
      if reduced then
        _, reach = find(reduced, PLAIN_RUN)
      end
      if not reduced or reach < #reduced then
        local control = find(text, '[%z\1-\8\11\12\14-\31]', plain + 1)
        if control then
          fail(what, 'raw control character', control)
        end
        local bad = first_broken(text)
        if bad then
          fail(what, 'invalid UTF-8', bad)
        end
      end
    end
    next_backslash, next_newline, next_return, next_tab = 0, 0, 0, 0
    -- Per open container, by depth: the object's serial number, or false for an array; the key
    -- tables by depth.
    local open, keys, depth, serial = {}, {}, 0, 0
    local at = skip(text, 1)
    while true do
      -- A value starts at `at`.
      values_left = values_left - 1
      if values_left < 0 then
        over_budget(what)
      end
      local first = byte(text, at)
      local closed = true
      if first == 123 or first == 91 then
        if depth == LIMITS.json_depth then
          fail(what, 'nested deeper than ' .. LIMITS.json_depth, at)
        end
        local inside = skip(text, at + 1)
        if byte(text, inside) == first + 2 then -- {} or []
          at = inside + 1
        else
          depth = depth + 1
          closed = false
          if first == 123 then
            serial = serial + 1
            open[depth] = serial
            keys[depth] = keys[depth] or {}
            at = key(text, inside, keys[depth], serial, what)
          else
            open[depth] = false
            at = inside
          end
        end
      elseif first == 34 then
        at = string_end(text, at, what)
      elseif first then
        at = scalar_end(text, at, first, what)
      else
        fail(what, 'expected a value', at)
      end
      -- After a value: close containers until a comma asks for the next value.
      while closed do
        local next_byte = byte(text, at)
        if next_byte == 32 or next_byte == 10 or next_byte == 13 or next_byte == 9 then
          at = skip(text, at)
          next_byte = byte(text, at)
        end
        if depth == 0 then
          if at <= #text then
            fail(what, 'unexpected text after the value', at)
          end
          return
        end
        local object = open[depth]
        if next_byte == 44 then
          at = skip(text, at + 1)
          if object then
            at = key(text, at, keys[depth], object, what)
          end
          closed = false
        elseif (next_byte == 125 and object) or (next_byte == 93 and object == false) then
          depth = depth - 1
          at = at + 1
        else
          fail(what, object and 'expected , or } in an object' or 'expected , or ] in an array', at)
        end
      end
    end
  end
end
