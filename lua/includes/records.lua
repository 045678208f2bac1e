-- Record helpers: flat field/value arrays, the reply shape of every function
-- (docs/ARCHITECTURE.md rule 9).

-- hash_to_table(flat): turn an HGETALL reply into a Lua table.
local function hash_to_table(flat)
  local record = {}
  for index = 1, #flat, 2 do
    record[flat[index]] = flat[index + 1]
  end
  return record
end

-- split_csv(text): the non-empty items of a comma-separated list, in order.
local function split_csv(text)
  local items = {}
  for item in string.gmatch(text, '[^,]+') do
    items[#items + 1] = item
  end
  return items
end

-- flat_reply(fields, values): fields paired with values (an HMGET reply in the same order) as a
-- flat field/value array; missing values are ''.
local function flat_reply(fields, values)
  local reply = {}
  for index, field in ipairs(fields) do
    reply[#reply + 1] = field
    reply[#reply + 1] = values[index] or ''
  end
  return reply
end
