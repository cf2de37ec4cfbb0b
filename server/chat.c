/* chat.c — ChatML or the fallback prompt format; see chat.h. */
#include "chat.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fileio.h"
#include "base/json.h"

void roe_chat_template_from_text(const char *jinja, const roe_tokenizer *tok,
                                 struct roe_chat_template *t) {
    memset(t, 0, sizeof *t);
    if (jinja && strstr(jinja, "<|im_start|>") && strstr(jinja, "<|im_end|>")) {
        t->style = ROE_CHAT_CHATML;
        const int32_t end = tok ? roe_tokenizer_find(tok, "<|im_end|>") : -1;
        if (end >= 0) t->stop_ids[t->n_stop++] = end;
        snprintf(t->source, sizeof t->source, "ChatML (tokenizer_config.json chat_template)%s",
                 end >= 0 ? ""
                          : "; the tokenizer has no <|im_end|> token: generation ends at eos only");
    } else {
        t->style = ROE_CHAT_FALLBACK;
        snprintf(t->source, sizeof t->source, "fallback 'role: content' lines (%s)",
                 jinja ? "the chat_template is not ChatML-style"
                       : "no chat_template in tokenizer_config.json");
    }
}

roe_status roe_chat_template_load(const char *model_dir, const roe_tokenizer *tok,
                                  struct roe_chat_template *t) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    if (!roe_is_file(path)) {
        roe_chat_template_from_text(NULL, tok, t);
        return ROE_OK;
    }
    char *text = NULL;
    size_t len = 0;
    ROE_TRY(roe_file_read_all(path, 64u << 20, &text, &len));
    int oom = 0;
    cJSON *root = roe_json_parse(text, len, NULL, &oom);
    roe_free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return oom ? roe_fail(ROE_ERR_NOMEM, "%s: out of memory parsing it", path)
                   : roe_fail(ROE_ERR_FORMAT, "%s is not a JSON object", path);
    }
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    const char *jinja = NULL;
    if (cJSON_IsString(ct))
        jinja = ct->valuestring;
    else if (cJSON_IsArray(ct)) { /* [{"name": "default", "template": "..."}, ...] */
        const cJSON *it;
        cJSON_ArrayForEach(it, ct) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(name) && strcmp(name->valuestring, "default") == 0 &&
                cJSON_IsString(tpl))
                jinja = tpl->valuestring;
        }
    }
    roe_chat_template_from_text(jinja, tok, t);
    cJSON_Delete(root);
    return ROE_OK;
}

/* A message's content as text: a string, text parts, or null (an assistant turn). */
static roe_status content_text(const cJSON *content, int i, const char *role,
                               struct roe_strbuf *out) {
    if (cJSON_IsString(content)) {
        roe_strbuf_puts(out, content->valuestring);
        return ROE_OK;
    }
    if ((!content || cJSON_IsNull(content)) && strcmp(role, "assistant") == 0) return ROE_OK;
    if (!cJSON_IsArray(content))
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "messages[%d].content must be a string or an array of text parts", i);
    const cJSON *part;
    int j = 0;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) ||
            strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "messages[%d].content[%d] must be {\"type\": \"text\", \"text\": "
                            "string}: only text "
                            "content is supported",
                            i, j);
        roe_strbuf_puts(out, text->valuestring);
        j++;
    }
    return ROE_OK;
}

roe_status roe_chat_render(const struct roe_chat_template *t, const cJSON *messages,
                           struct roe_strbuf *out) {
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0)
        return roe_fail(ROE_ERR_INVALID_ARG,
                        "'messages' must be a non-empty array of {role, content} objects");
    const cJSON *m;
    int i = 0;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return roe_fail(ROE_ERR_INVALID_ARG,
                            "messages[%d] must be an object with a string 'role'", i);
        const char *r = role->valuestring;
        if (strcmp(r, "developer") == 0) r = "system";
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0)
            return roe_fail(
                ROE_ERR_INVALID_ARG,
                "messages[%d].role '%.40s' is not supported (system, developer, user, assistant)",
                i, role->valuestring);
        roe_strbuf_puts(out, t->style == ROE_CHAT_CHATML ? "<|im_start|>" : "");
        roe_strbuf_puts(out, r);
        roe_strbuf_puts(out, t->style == ROE_CHAT_CHATML ? "\n" : ": ");
        ROE_TRY(content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, r, out));
        roe_strbuf_puts(out, t->style == ROE_CHAT_CHATML ? "<|im_end|>\n" : "\n");
        i++;
    }
    roe_strbuf_puts(out, t->style == ROE_CHAT_CHATML ? "<|im_start|>assistant\n" : "assistant:");
    if (out->oom) return roe_fail(ROE_ERR_NOMEM, "out of memory rendering %d chat messages", i);
    return ROE_OK;
}
