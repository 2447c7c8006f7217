/*
 * core.c: opentact.core, the module table: luaopen and the registration
 * of what the other files define. Nothing else lives here.
 */
#include "opentact.h"

static const luaL_Reg core_functions[] = {
    {"curl", transport_curl_new},
    {"now", clock_now},
    {"sleep", clock_sleep},
    {"rng", clock_rng},
    {"request_list", request_list},
    {"number", request_number},
    {"request_lease", request_lease},
    {"request_assign", request_assign},
    {"request_search", request_search},
    {"time", auth_time},
    {"base64", auth_base64},
    {"jwt_claims", auth_jwt_claims},
    {"write_private", auth_write_private},
    {"pid", fork_pid},
    {"sha256", sha256_hex},
    {"sha256_fields", sha256_fields},
    {"isatty", process_isatty},
    {"getcwd", process_getcwd},
    {"json_decode", json_decode_document},
    {NULL, NULL},
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_opentact_core(lua_State *L) {
    fork_count();
    transport_curl_register(L);

    buffer_register(L);

    ot_newlib(L, core_functions);

    answer_push_decode(L);
    lua_setfield(L, -2, "answer_decode");

    json_object_mt(L);
    lua_setfield(L, -2, "Object");

    journal_register(L);

    lua_pushliteral(L, OPENTACT_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
