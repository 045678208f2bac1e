-- JSON spans: where each value of an already validated JSON text starts and ends, so that a
-- step's input or a context field is stored exactly as the caller wrote it. (cjson.decode and
-- cjson.encode again would turn [] into {} and round numbers to 14 digits.) Every text given to
-- these helpers was accepted by JSON.check first (strict JSON, no duplicate keys), so they only
-- find boundaries.

-- WF.json_string_end(text, quote): the position just after the string whose opening quote is
-- at `quote`.
function WF.json_string_end(text, quote)
  local at = quote + 1
  while true do
    local found = string.find(text, '["\\]', at)
    if string.byte(text, found) == 34 then
      return found + 1
    end
    at = found + 2
  end
end

-- WF.json_value(text, at): the first and the just-after-last position of the value that starts
-- at or after `at` (whitespace skipped).
function WF.json_value(text, at)
  local first = string.find(text, '%S', at)
  local byte = string.byte(text, first)
  if byte == 34 then
    return first, WF.json_string_end(text, first)
  end
  if byte ~= 123 and byte ~= 91 then
    local _, last = string.find(text, '^[^,:%]}%s]+', first)
    return first, last + 1
  end
  local depth = 0
  at = first
  while true do
    local found = string.find(text, '[%[%]{}"]', at)
    byte = string.byte(text, found)
    if byte == 34 then
      at = WF.json_string_end(text, found)
    else
      depth = depth + ((byte == 123 or byte == 91) and 1 or -1)
      at = found + 1
      if depth == 0 then
        return first, at
      end
    end
  end
end

-- WF.json_each(text, open, visit): call visit(key, key_text, value_first) for each item of the
-- object or array whose bracket is at `open`, in order; visit returns the position just after the
-- value (so it can skip the value with WF.json_value or walk into it). key (decoded) and key_text
-- (as written, quotes included) are nil for array elements. Returns the position after the
-- closing bracket. One pass: nothing is read twice.
function WF.json_each(text, open, visit)
  local is_object = string.byte(text, open) == 123
  local at = string.find(text, '%S', open + 1)
  local byte = string.byte(text, at)
  if byte == 125 or byte == 93 then
    return at + 1
  end
  while true do
    local key, key_text
    if is_object then
      local key_end = WF.json_string_end(text, at)
      key_text = string.sub(text, at, key_end - 1)
      key = string.find(key_text, '\\', 1, true) and cjson.decode(key_text) or string.sub(key_text, 2, -2)
      at = string.find(text, ':', key_end, true) + 1
    end
    at = string.find(text, '%S', visit(key, key_text, string.find(text, '%S', at)))
    if string.byte(text, at) ~= 44 then
      return at + 1
    end
    at = string.find(text, '%S', at + 1)
  end
end

-- WF.json_members(text): the members of the JSON object `text` as {order = {key...},
-- values = {key = value_text}, key_texts = {key = key_text}}; a repeated key keeps its first
-- place and its last value (as cjson does; only a context stored before JSON.check can have one).
function WF.json_members(text)
  local members = {order = {}, values = {}, key_texts = {}}
  WF.json_each(text, string.find(text, '%S'), function(key, key_text, first)
    local _, after = WF.json_value(text, first)
    if members.values[key] == nil then
      members.order[#members.order + 1] = key
    end
    members.values[key] = string.sub(text, first, after - 1)
    members.key_texts[key] = key_text
    return after
  end)
  return members
end

-- WF.merge_objects(current, patch): the JSON object text `current` with the top-level members of
-- the object text `patch` set (a member whose value is null is removed): members keep their
-- order, new ones come last, and every value keeps its text.
function WF.merge_objects(current, patch)
  local merged, changes = WF.json_members(current), WF.json_members(patch)
  for _, key in ipairs(changes.order) do
    if merged.values[key] == nil then
      merged.order[#merged.order + 1] = key
    end
    local value = changes.values[key]
    merged.values[key] = value ~= 'null' and value
    merged.key_texts[key] = changes.key_texts[key]
  end
  local parts = {}
  for _, key in ipairs(merged.order) do
    if merged.values[key] then
      parts[#parts + 1] = merged.key_texts[key] .. ':' .. merged.values[key]
    end
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- WF.step_input_texts(text): the text of each step's `input` in a workflow definition (already
-- decoded, so steps is known to be an array of objects), by step index; nil where absent.
function WF.step_input_texts(text)
  local inputs = {}
  local function each_field(index)
    return function(field, _, first)
      local _, after = WF.json_value(text, first)
      if field == 'input' then
        inputs[index] = string.sub(text, first, after - 1)
      end
      return after
    end
  end
  WF.json_each(text, string.find(text, '%S'), function(key, _, first)
    if key ~= 'steps' then
      local _, after = WF.json_value(text, first)
      return after
    end
    inputs = {}
    local index = 0
    return WF.json_each(text, first, function(_, _, element)
      index = index + 1
      return WF.json_each(text, element, each_field(index))
    end)
  end)
  return inputs
end
