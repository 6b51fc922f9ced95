"""HAProxy 2.6.12's registered sample fetches, converters and ACL keywords (data only).

Generated from ``haproxy -dKsmp``, ``-dKcnv`` and ``-dKacl`` of HAProxy 2.6.12, plus one
``haproxy -c`` run per fetch to record the source name HAProxy prints in its "some args extract
information from '<source>'" error (HAProxy names the *lowest bit of the fetch's source mask*
with the checkpoint-name table, so the wording is odd but it is what users see).

FETCH_GROUPS rows: (availability mask, source wording, output type, fetch tokens).  The mask has
one character per HAProxy sample checkpoint, in ``points.CHECKPOINTS`` order ('Y' = usable).
A token is ``name`` or ``name(argument signature)`` with spaces in the signature replaced by '_'.
"""

from __future__ import annotations

FETCH_GROUPS: tuple[tuple[str, str, str, str], ...] = (
    ("...........YYYYYYY.Y..", "frontend http-response header rule", "bin",
        "res.body res.hdrs res.hdrs_bin"),
    ("...........YYYYYYY.Y..", "frontend http-response header rule", "ipv4",
        "res.hdr_ip([string,integer]) shdr_ip([string,integer])"),
    ("...........YYYYYYY.Y..", "frontend http-response header rule", "sint",
        "res.body_len res.body_size res.cook_cnt([string]) res.cook_val([string]) "
        "res.fhdr_cnt([string]) res.hdr_cnt([string]) res.hdr_val([string,integer]) "
        "scook_cnt([string]) scook_val([string]) shdr_cnt([string]) shdr_val([string,integer])"),
    ("...........YYYYYYY.Y..", "frontend http-response header rule", "str",
        "res.cook([string]) res.fhdr([string,integer]) res.hdr([string,integer]) "
        "res.hdr_names([string]) res.ver resp_ver scook([string]) shdr([string,integer])"),
    ("...........YYYYYYY.Y..", "frontend tcp-response content rule", "bin",
        "res.payload(integer,integer) res.payload_lv(integer,integer[,string])"),
    ("...........YYYYYYY.Y..", "frontend tcp-response content rule", "sint",
        "rep_ssl_hello_type res.len res.ssl_hello_type"),
    ("...........YYYYYYYYY..", "backend http-response body rule", "sint",
        "bc_dst bc_dst_port bc_err bc_http_major bc_src bc_src_port"),
    ("...........YYYYYYYYY..", "backend http-response body rule", "str",
        "bc_err_str"),
    ("...........YYYYYYYYY..", "backend stick-store rule", "bin",
        "ssl_bc_client_random ssl_bc_server_random ssl_bc_session_id ssl_bc_session_key "
        "ssl_bc_unique_id"),
    ("...........YYYYYYYYY..", "backend stick-store rule", "bool",
        "ssl_bc ssl_bc_is_resumed"),
    ("...........YYYYYYYYY..", "backend stick-store rule", "sint",
        "ssl_bc_alg_keysize ssl_bc_err ssl_bc_use_keysize"),
    ("...........YYYYYYYYY..", "backend stick-store rule", "str",
        "ssl_bc_alpn ssl_bc_cipher ssl_bc_err_str ssl_bc_npn ssl_bc_protocol"),
    ("...........YYYYYYYYY..", "frontend http-response body rule", "bool",
        "res.comp"),
    ("...........YYYYYYYYY..", "frontend http-response body rule", "sint",
        "status"),
    ("...........YYYYYYYYY..", "frontend http-response body rule", "str",
        "capture.res.hdr(integer) res.comp_algo"),
    ("..........YYYYYYYYYY..", "backend http-response header rule", "sint",
        "srv_id"),
    ("..........YYYYYYYYYY..", "backend http-response header rule", "str",
        "srv_name"),
    ("..........YYYYYYYYYY..", "frontend http-response body rule", "bool",
        "res.cache_hit"),
    ("..........YYYYYYYYYY..", "frontend http-response body rule", "str",
        "res.cache_name"),
    ("......YYYYYYYYYYYYYY..", "backend tcp-response content rule", "sint",
        "be_id be_server_timeout be_tunnel_timeout cur_server_timeout cur_tunnel_timeout"),
    ("......YYYYYYYYYYYYYY..", "backend tcp-response content rule", "str",
        "be_name"),
    ("..YYYYYYYYY...........", "backend http-request body rule", "bin",
        "base32+src req.body req.body_param([string]) req.hdrs req.hdrs_bin url32+src"),
    ("..YYYYYYYYY...........", "backend http-request body rule", "bool",
        "http_auth(user_list)"),
    ("..YYYYYYYYY...........", "backend http-request body rule", "ipv4",
        "hdr_ip([string,integer]) req.hdr_ip([string,integer]) url_ip"),
    ("..YYYYYYYYY...........", "backend http-request body rule", "sint",
        "base32 cook_cnt([string]) cook_val([string]) hdr_cnt([string]) hdr_val([string,integer]) "
        "req.body_len req.body_size req.cook_cnt([string]) req.cook_val([string]) "
        "req.fhdr_cnt([string]) req.hdr_cnt([string]) req.hdr_val([string,integer]) url32 "
        "url_port urlp_val([string,string])"),
    ("..YYYYYYYYY...........", "backend http-request body rule", "str",
        "base baseq cook([string]) fcgi.docroot fcgi.index http_auth_bearer([string]) "
        "http_auth_group(user_list) http_auth_pass http_auth_type http_auth_user path pathq query "
        "req.cook([string]) req.fhdr([string,integer]) req.hdr([string,integer]) "
        "req.hdr_names([string]) req.ver req_ver url url_param([string,string]) "
        "urlp([string,string])"),
    ("..YYYYYYYYY...........", "backend http-request header rule", "bin",
        "req.payload(integer,integer) req.payload_lv(integer,integer[,string])"),
    ("..YYYYYYYYY...........", "backend http-request header rule", "bool",
        "req.ssl_ec_ext"),
    ("..YYYYYYYYY...........", "backend http-request header rule", "sint",
        "rdp_cookie_cnt([string]) req.len req.rdp_cookie_cnt([string]) req.ssl_hello_type "
        "req.ssl_st_ext req.ssl_ver req_len req_ssl_hello_type req_ssl_ver"),
    ("..YYYYYYYYY...........", "backend http-request header rule", "str",
        "rdp_cookie([string]) req.rdp_cookie([string]) req.ssl_alpn req.ssl_sni req_ssl_sni"),
    ("..YYYYYYYYYYYYYYYY.Y..", "backend http-request body rule", "bin",
        "distcc_body(string[,integer]) internal.htx_blk.data(string)"),
    ("..YYYYYYYYYYYYYYYY.Y..", "backend http-request body rule", "bool",
        "internal.htx.has_eom"),
    ("..YYYYYYYYYYYYYYYY.Y..", "backend http-request body rule", "sint",
        "distcc_param(string[,integer]) internal.htx.data internal.htx.free "
        "internal.htx.free_data internal.htx.nbblks internal.htx.size internal.htx.used "
        "internal.htx_blk.size(string)"),
    ("..YYYYYYYYYYYYYYYY.Y..", "backend http-request body rule", "str",
        "cookie([string]) hdr([string,integer]) internal.htx_blk.hdrname(string) "
        "internal.htx_blk.hdrval(string) internal.htx_blk.start_line(string) "
        "internal.htx_blk.type(string)"),
    ("..YYYYYYYYYYYYYYYY.Y..", "backend http-request header rule", "bin",
        "payload(integer,integer) payload_lv(integer,integer[,string])"),
    ("..YYYYYYYYYYYYYYYYY...", "backend use-server, balance or stick-match rule", "bool",
        "http_first_req req.proto_http req_proto_http"),
    ("..YYYYYYYYYYYYYYYYY...", "backend use-server, balance or stick-match rule", "meth",
        "method"),
    ("..YYYYYYYYYYYYYYYYY...", "backend use-server, balance or stick-match rule", "str",
        "capture.req.hdr(integer) capture.req.method capture.req.uri capture.req.ver "
        "capture.res.ver"),
    (".YYYYYYYYYYYYYYYYYY...", "frontend use-backend rule", "bin",
        "ssl_c_chain_der ssl_c_der ssl_c_serial ssl_c_sha1 ssl_f_der ssl_f_serial ssl_f_sha1 "
        "ssl_fc_cipherlist_hex([integer]) ssl_fc_client_random ssl_fc_server_random "
        "ssl_fc_session_id ssl_fc_session_key ssl_fc_unique_id ssl_s_chain_der ssl_s_der "
        "ssl_s_serial ssl_s_sha1"),
    (".YYYYYYYYYYYYYYYYYY...", "frontend use-backend rule", "bool",
        "ssl_c_used ssl_fc ssl_fc_has_crt ssl_fc_has_early ssl_fc_has_sni ssl_fc_is_resumed"),
    (".YYYYYYYYYYYYYYYYYY...", "frontend use-backend rule", "sint",
        "ssl_c_ca_err ssl_c_ca_err_depth ssl_c_err ssl_c_verify ssl_c_version ssl_f_version "
        "ssl_fc_alg_keysize ssl_fc_cipherlist_xxh ssl_fc_err ssl_fc_protocol_hello_id "
        "ssl_fc_use_keysize ssl_s_version"),
    (".YYYYYYYYYYYYYYYYYY...", "frontend use-backend rule", "str",
        "ssl_c_i_dn([string,integer,string]) ssl_c_key_alg ssl_c_notafter ssl_c_notbefore "
        "ssl_c_s_dn([string,integer,string]) ssl_c_sig_alg ssl_f_i_dn([string,integer,string]) "
        "ssl_f_key_alg ssl_f_notafter ssl_f_notbefore ssl_f_s_dn([string,integer,string]) "
        "ssl_f_sig_alg ssl_fc_alpn ssl_fc_cipher ssl_fc_cipherlist_bin([integer]) "
        "ssl_fc_cipherlist_str([integer]) ssl_fc_client_early_traffic_secret "
        "ssl_fc_client_handshake_traffic_secret ssl_fc_client_traffic_secret_0 "
        "ssl_fc_early_exporter_secret ssl_fc_ecformats_bin ssl_fc_eclist_bin([integer]) "
        "ssl_fc_err_str ssl_fc_exporter_secret ssl_fc_extlist_bin([integer]) ssl_fc_npn "
        "ssl_fc_protocol ssl_fc_server_handshake_traffic_secret ssl_fc_server_traffic_secret_0 "
        "ssl_fc_sni ssl_s_i_dn([string,integer,string]) ssl_s_key_alg ssl_s_notafter "
        "ssl_s_notbefore ssl_s_s_dn([string,integer,string]) ssl_s_sig_alg"),
    ("YYYYYYYYYYYYYYYYYYY...", "", "sint",
        "dst_conn fe_client_timeout fe_id so_id"),
    ("YYYYYYYYYYYYYYYYYYY...", "", "str",
        "fe_defbe fe_name so_name"),
    ("YYYYYYYYYYYYYYYYYYYY..", "", "bool",
        "dst_is_local fc_dst_is_local fc_rcvd_proxy fc_src_is_local src_is_local"),
    ("YYYYYYYYYYYYYYYYYYYY..", "", "ipv4",
        "dst fc_dst fc_src src"),
    ("YYYYYYYYYYYYYYYYYYYY..", "", "sint",
        "dst_port fc_dst_port fc_err fc_fackets([string]) fc_http_major fc_lost([string]) "
        "fc_reordering([string]) fc_retrans([string]) fc_rtt([string]) fc_rttvar([string]) "
        "fc_sacked([string]) fc_src_port fc_unacked([string]) sc0_kbytes_in([table]) "
        "sc0_kbytes_out([table]) sc1_kbytes_in([table]) sc1_kbytes_out([table]) "
        "sc2_kbytes_in([table]) sc2_kbytes_out([table]) sc_kbytes_in(integer[,table]) "
        "sc_kbytes_out(integer[,table]) src_bytes_in_rate(table) src_bytes_out_rate(table) "
        "src_clr_gpc(integer,table) src_clr_gpc0(table) src_clr_gpc1(table) src_conn_cnt(table) "
        "src_conn_cur(table) src_conn_rate(table) src_get_gpc(integer,table) src_get_gpc0(table) "
        "src_get_gpc1(table) src_get_gpt(integer,table) src_get_gpt0(table) src_gpc0_rate(table) "
        "src_gpc1_rate(table) src_gpc_rate(integer,table) src_http_err_cnt(table) "
        "src_http_err_rate(table) src_http_fail_cnt(table) src_http_fail_rate(table) "
        "src_http_req_cnt(table) src_http_req_rate(table) src_inc_gpc(integer,table) "
        "src_inc_gpc0(table) src_inc_gpc1(table) src_kbytes_in(table) src_kbytes_out(table) "
        "src_port src_sess_cnt(table) src_sess_rate(table) src_updt_conn_cnt(table)"),
    ("YYYYYYYYYYYYYYYYYYYY..", "", "str",
        "fc_err_str fc_pp_authority fc_pp_unique_id"),
    ("YYYYYYYYYYYYYYYYYYYY.Y", "", "bool",
        "internal.strm.is_htx sc0_tracked([table]) sc1_tracked([table]) sc2_tracked([table]) "
        "sc_tracked(integer[,table]) srv_is_up(server) stopping wait_end"),
    ("YYYYYYYYYYYYYYYYYYYY.Y", "", "sint",
        "avg_queue(backend) be_conn(backend) be_conn_free(backend) be_sess_rate(backend) "
        "connslots(backend) cpu_calls cpu_ns_avg cpu_ns_tot fe_conn(frontend) "
        "fe_req_rate(frontend) fe_sess_rate(frontend) last_rule_line lat_ns_avg lat_ns_tot "
        "nbsrv(backend) prio_class prio_offset queue(backend) sc0_bytes_in_rate([table]) "
        "sc0_bytes_out_rate([table]) sc0_clr_gpc0([table]) sc0_clr_gpc1([table]) "
        "sc0_conn_cnt([table]) sc0_conn_cur([table]) sc0_conn_rate([table]) sc0_get_gpc0([table]) "
        "sc0_get_gpc1([table]) sc0_get_gpt0([table]) sc0_gpc0_rate([table]) "
        "sc0_gpc1_rate([table]) sc0_http_err_cnt([table]) sc0_http_err_rate([table]) "
        "sc0_http_fail_cnt([table]) sc0_http_fail_rate([table]) sc0_http_req_cnt([table]) "
        "sc0_http_req_rate([table]) sc0_inc_gpc0([table]) sc0_inc_gpc1([table]) "
        "sc0_sess_cnt([table]) sc0_sess_rate([table]) sc0_trackers([table]) "
        "sc1_bytes_in_rate([table]) sc1_bytes_out_rate([table]) sc1_clr_gpc(integer[,table]) "
        "sc1_clr_gpc0([table]) sc1_clr_gpc1([table]) sc1_conn_cnt([table]) sc1_conn_cur([table]) "
        "sc1_conn_rate([table]) sc1_get_gpc0([table]) sc1_get_gpc1([table]) sc1_get_gpt0([table]) "
        "sc1_gpc0_rate([table]) sc1_gpc1_rate([table]) sc1_http_err_cnt([table]) "
        "sc1_http_err_rate([table]) sc1_http_fail_cnt([table]) sc1_http_fail_rate([table]) "
        "sc1_http_req_cnt([table]) sc1_http_req_rate([table]) sc1_inc_gpc0([table]) "
        "sc1_inc_gpc1([table]) sc1_sess_cnt([table]) sc1_sess_rate([table]) sc1_trackers([table]) "
        "sc2_bytes_in_rate([table]) sc2_bytes_out_rate([table]) sc2_clr_gpc0([table]) "
        "sc2_clr_gpc1([table]) sc2_conn_cnt([table]) sc2_conn_cur([table]) sc2_conn_rate([table]) "
        "sc2_get_gpc0([table]) sc2_get_gpc1([table]) sc2_get_gpt0([table]) sc2_gpc0_rate([table]) "
        "sc2_gpc1_rate([table]) sc2_http_err_cnt([table]) sc2_http_err_rate([table]) "
        "sc2_http_fail_cnt([table]) sc2_http_fail_rate([table]) sc2_http_req_cnt([table]) "
        "sc2_http_req_rate([table]) sc2_inc_gpc0([table]) sc2_inc_gpc1([table]) "
        "sc2_sess_cnt([table]) sc2_sess_rate([table]) sc2_trackers([table]) "
        "sc_bytes_in_rate(integer[,table]) sc_bytes_out_rate(integer[,table]) "
        "sc_clr_gpc(integer,integer[,table]) sc_clr_gpc0(integer[,table]) "
        "sc_clr_gpc1(integer[,table]) sc_conn_cnt(integer[,table]) sc_conn_cur(integer[,table]) "
        "sc_conn_rate(integer[,table]) sc_get_gpc(integer,integer[,table]) "
        "sc_get_gpc0(integer[,table]) sc_get_gpc1(integer[,table]) "
        "sc_get_gpt(integer,integer[,table]) sc_get_gpt0(integer[,table]) "
        "sc_gpc0_rate(integer[,table]) sc_gpc1_rate(integer[,table]) "
        "sc_gpc_rate(integer,integer[,table]) sc_http_err_cnt(integer[,table]) "
        "sc_http_err_rate(integer[,table]) sc_http_fail_cnt(integer[,table]) "
        "sc_http_fail_rate(integer[,table]) sc_http_req_cnt(integer[,table]) "
        "sc_http_req_rate(integer[,table]) sc_inc_gpc(integer,integer[,table]) "
        "sc_inc_gpc0(integer[,table]) sc_inc_gpc1(integer[,table]) sc_sess_cnt(integer[,table]) "
        "sc_sess_rate(integer[,table]) sc_trackers(integer[,table]) srv_conn(server) "
        "srv_conn_free(server) srv_iweight(server) srv_queue(server) srv_sess_rate(server) "
        "srv_uweight(server) srv_weight(server) table_avl(table) table_cnt(table)"),
    ("YYYYYYYYYYYYYYYYYYYY.Y", "", "str",
        "last_rule_file"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "any",
        "var(string[,string])"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "bin",
        "bin(string)"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "bool",
        "always_false always_true bool(string)"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "ipv4",
        "ipv4(IPv4_address)"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "ipv6",
        "ipv6(IPv6_address)"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "meth",
        "meth(string)"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "sint",
        "date([integer,string]) date_us int(integer) nbproc proc rand([integer]) thread"),
    ("YYYYYYYYYYYYYYYYYYYYYY", "", "str",
        "env(string) hostname str(string) unique-id uuid([integer])"),
)

# (input type, output type, converters)
CONVERTER_GROUPS: tuple[tuple[str, str, str], ...] = (
    ("addr", "addr",
        "map_ip_ip(string[,string])"),
    ("addr", "ipv4",
        "ipmask(IPv4_mask[,IPv6_mask])"),
    ("addr", "sint",
        "map_ip_int(string[,integer])"),
    ("addr", "str",
        "map_ip(string[,string])"),
    ("any", "any",
        "debug([string,string]) set-var(string[,string,string,string,string]) unset-var(string)"),
    ("any", "bool",
        "in_table(table)"),
    ("any", "sint",
        "table_bytes_in_rate(table) table_bytes_out_rate(table) table_conn_cnt(table) "
        "table_conn_cur(table) table_conn_rate(table) table_expire(table[,integer]) "
        "table_gpc(integer,table) table_gpc0(table) table_gpc0_rate(table) table_gpc1(table) "
        "table_gpc1_rate(table) table_gpc_rate(integer,table) table_gpt(integer,table) "
        "table_gpt0(table) table_http_err_cnt(table) table_http_err_rate(table) "
        "table_http_fail_cnt(table) table_http_fail_rate(table) table_http_req_cnt(table) "
        "table_http_req_rate(table) table_idle(table[,integer]) table_kbytes_in(table) "
        "table_kbytes_out(table) table_server_id(table) table_sess_cnt(table) "
        "table_sess_rate(table) table_trackers(table)"),
    ("bin", "any",
        "jwt_header_query([string,string]) jwt_payload_query([string,string])"),
    ("bin", "bin",
        "aes_gcm_dec(integer,string,string,string) bytes(integer[,integer]) digest(string) "
        "fix_tag_value(string) hmac(string,string) "
        "protobuf(Protocol_buffers_field_number[,string]) sha1 sha2([integer]) "
        "ungrpc(Protocol_buffers_field_number[,string])"),
    ("bin", "bool",
        "fix_is_valid mqtt_is_valid secure_memcmp(string)"),
    ("bin", "sint",
        "crc32([integer]) crc32c([integer]) djb2([integer]) jwt_verify(string,string) "
        "sdbm([integer]) wt6([integer]) xxh3([integer]) xxh32([integer]) xxh64([integer])"),
    ("bin", "str",
        "base64 be2dec(string[,integer,integer]) be2hex(string[,integer,integer]) hex "
        "mqtt_field_value(string,string) ub64enc"),
    ("bool", "str",
        "iif(string,string)"),
    ("sint", "addr",
        "map_int_ip(string[,string])"),
    ("sint", "bin",
        "htonl"),
    ("sint", "bool",
        "bool even not odd"),
    ("sint", "sint",
        "add(string) and(string) cpl div(string) map_int_int(string[,integer]) mod(string) "
        "mul(string) neg or(string) sub(string) xor(string)"),
    ("sint", "str",
        "http_date([integer,string]) ltime(string[,integer]) map_int(string[,string]) "
        "utime(string[,integer])"),
    ("str", "addr",
        "map_beg_ip(string[,string]) map_dir_ip(string[,string]) map_dom_ip(string[,string]) "
        "map_end_ip(string[,string]) map_reg_ip(string[,string]) map_str_ip(string[,string]) "
        "map_sub_ip(string[,string])"),
    ("str", "any",
        "json_query(string[,string])"),
    ("str", "bin",
        "b64dec ub64dec"),
    ("str", "sint",
        "hex2i length map_beg_int(string[,integer]) map_dir_int(string[,integer]) "
        "map_dom_int(string[,integer]) map_end_int(string[,integer]) "
        "map_reg_int(string[,integer]) map_str_int(string[,integer]) "
        "map_sub_int(string[,integer]) nbsrv port_only srv_queue strcmp(string)"),
    ("str", "str",
        "add_item(string,string[,string]) capture-req(integer) capture-res(integer) "
        "concat(string[,string,string]) cut_crlf field(integer,string[,integer]) host_only "
        "json(string) language(string[,string]) lower ltrim(string) map(string[,string]) "
        "map_beg(string[,string]) map_dir(string[,string]) map_dom(string[,string]) "
        "map_end(string[,string]) map_reg(string[,string]) map_regm(string[,string]) "
        "map_str(string[,string]) map_sub(string[,string]) regsub(regex,string[,string]) "
        "rtrim(string) upper url_dec([integer]) url_enc(string) word(integer,string[,integer])"),
)

# ACL keyword = fetch:matching method
ACL_KEYWORDS_TEXT = (
    "base=base:str base_beg=base:beg base_dir=base:dir base_dom=base:dom base_end=base:end "
    "base_len=base:len base_reg=base:reg base_sub=base:sub cook=req.cook:str "
    "cook_beg=req.cook:beg cook_dir=req.cook:dir cook_dom=req.cook:dom cook_end=req.cook:end "
    "cook_len=req.cook:len cook_reg=req.cook:reg cook_sub=req.cook:sub hdr=req.hdr:str "
    "hdr_beg=req.hdr:beg hdr_dir=req.hdr:dir hdr_dom=req.hdr:dom hdr_end=req.hdr:end "
    "hdr_len=req.hdr:len hdr_reg=req.hdr:reg hdr_sub=req.hdr:sub "
    "http_auth_group=http_auth_group:str method=method:str path=path:str path_beg=path:beg "
    "path_dir=path:dir path_dom=path:dom path_end=path:end path_len=path:len path_reg=path:reg "
    "path_sub=path:sub payload=req.payload:bin payload_lv=req.payload_lv:bin "
    "req.ssl_ver=req.ssl_ver:int req_rdp_cookie=req.rdp_cookie:str "
    "req_rdp_cookie_cnt=req.rdp_cookie_cnt:int req_ssl_sni=req.ssl_sni:str "
    "req_ssl_ver=req.ssl_ver:int req_ver=req.ver:str resp_ver=res.ver:str scook=res.cook:str "
    "scook_beg=res.cook:beg scook_dir=res.cook:dir scook_dom=res.cook:dom scook_end=res.cook:end "
    "scook_len=res.cook:len scook_reg=res.cook:reg scook_sub=res.cook:sub shdr=res.hdr:str "
    "shdr_beg=res.hdr:beg shdr_dir=res.hdr:dir shdr_dom=res.hdr:dom shdr_end=res.hdr:end "
    "shdr_len=res.hdr:len shdr_reg=res.hdr:reg shdr_sub=res.hdr:sub ssl_fc_sni_end=ssl_fc_sni:end "
    "ssl_fc_sni_reg=ssl_fc_sni:reg url=url:str url_beg=url:beg url_dir=url:dir url_dom=url:dom "
    "url_end=url:end url_len=url:len url_reg=url:reg url_sub=url:sub urlp=urlp:str "
    "urlp_beg=urlp:beg urlp_dir=urlp:dir urlp_dom=urlp:dom urlp_end=urlp:end urlp_len=urlp:len "
    "urlp_reg=urlp:reg urlp_sub=urlp:sub "
)
