"""The words error messages are made of: what masking keeps of free text, nothing else.

Function words are kept everywhere except right after a comparison (a value position); content
words are also masked right after a noun that names an object (``table``, ``column``...), where
a schema name or value would stand. Anything not listed here is masked. Built from the
PostgreSQL message catalogue (words used at least four times) and the messages of SQLite, ODBC,
the network and Python; adding a word lets it through, so add only message vocabulary.
"""

from __future__ import annotations

__all__ = ["CONTENT_WORDS", "FUNCTION_WORDS", "OBJECT_NOUNS"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS = _words(
    """
a about above after again all already also among an and another any are aren't as at be because
been before being below between both but by can can't cannot contains could couldn't denied did
didn't do does doesn't don't done down due during e each either etc every exist exists failed
failing for found from g had has hasn't have haven't here how i.e if in instead into is isn't it
its just least less matches may might more most must named neither no nor not now of off on once
one only onto or other our out over per perhaps please requires same shall should shouldn't
since so some still such supplied than that the their then there these they this those to too
twice under unless until up very via violated violates was wasn't we were weren't what when
whether which while who whom whose why will with within without won't would yes yet you your
"""
)

CONTENT_WORDS = _words(
    """
abbreviation abort aborted aborting absolute accept accepting access accessor action actions
active activity actual add added address administrator affix age aggregate aggregates ahead
algorithm alias alignment allow allowed allows alter ambiguous amount analysis analyze
anycompatible anymore appear appears applied apply archive archived archiving argument arguments
array arrays arrow assign assignment associated attach attempt attempted attribute authenticated
authentication authorization automatic automatically autovacuum available average avoid back
backend background backup bad base basic bearer behavior belonging beyond bigint binary bind
binding bit bits block blocks body boolean bound bounds broken btree buffer buffers build built
busy byte bytes cache calculated call callback called calls cancel canceled canceling cancelled
candidate carriage cascades case cast casts catalog cause caused causes certificate change
changed changes channel char character characters check checked checkpoint checkpoints checks
checksum child choose chunk class clause clauses cleanup client clientcert close closed cluster
code coercible collation collations collects column columns command commands commit common
compare comparison compatibility compatible compilation compiled complete completed composite
compression concatenation concurrent concurrently condition conditional conditions conf
configuration configured conflict conflicting conflicts connect connection connections consider
considered consistent constant constants constraint constraints contain containing contents
context continue contrecord control controls conversion convert converted copy correctness
corrupt corrupted cost count crash create created creating creation cross current currently
cursor custom cycle damaged data database databricks datatype datatypes date datetime dead
deadlock debugging declared decoding default defaults deferrable define defined definition
definitions delay delete deleted delta deletes delimiter depend depth descriptor destination detach
detail details detected determine dict dictionary different digit digits dimension dimensional
dimensions direct directories directory disable disabled disables disk display distance divide
division documentation doesn domain domains dotted double download driver drivers drop dropped dump
duplicate duration dynamic elapsed element elements empty enable enabled enables encode encoding
encryption end ended ends enough ensure entries entry enum environment eof equal errno error
errors escape escapes establish established estimate estimator event exactly example exceeded
exceeds exception exclusion executable execute executed executing execution exhausted existing
exit exited expected expects expired explicit explicitly expr expression expressions extend
extension external extra facility failsafe failure false family fastpath fatal feature fetch few
field fields file files filter final find finish finished fired first fixed flag flags float
floating flush follow followed following forbidden force foreign fork form format formats
formatting forward fraction frame free freetds freeze frequently fsync full function functions
future gateway gather generate generated generation get given giving got granted grantor greater
group grouping handler handshake hash header hexadecimal higher hint history hive host hot hour
http https huge hypothetical ident identifier identifiers identify identity idle ignored image
immediate immutable implement implementation implemented import improper include included
including incompatible incomplete inconsistent incorrect increase increasing index indexed
indexes inet infinite infinity info information inherit inheritance inherited inherits initdb
initial initialize initialized input insert inserts inside installed instructs insufficient int
integer integrity interface internal interrupted interval invalid invocation ip isolation issuer
item items jdbc join joinable journal json jsonb jsonpath junction junk keepalive kernel key
keys keyword kind know known label language large larger last launched left length level lib
libpq libraries library limit line link list listen lists literal load loaded local locale
locate location lock locked locks log logged logging logical logs long longer look lookup loss
lost low lower magic main maintenance make making malformed manager many map mapping mariadb
mark marked mask match matched matching materialized max maximum means meant member members
memory merge merging message messages method minimal minimum mismatch misplaced missing misuse
mode modified modifier modifying module modules modulus months move moved moving ms mssql mstype
multidimensional multiple multirange multixact mysql name names namespace near necessary need
needed negative nested network never new newline next non nonce nondeterministic nonetype
notsupported null nulls number numeric object objects obtain odbc offset old oldest online open
opened operand operating operation operational operations operator operators option options
oracle order ordered ordering ordinal origin outer output overflow override own owned owner
ownership packet page pages panic parallel parameter parameters parent parenthesis parse parser
parsing part partition partitioned partitioning partitions pass password past path peer pending
perform performance performed permanent permission permissions permitted pgsql phase physical
pipe pl plan planned planner plans platform platforms plpgsql plugin point pointer points policy
port portal pos position positional positive possible postgres postgresql postmaster power pre
precision predicate predicates prefix prepared present presigned prevent previous primary prior
private privilege privileges probably problems procedure procedures proceed process processes
processing program programming progress promote promotion properly protocol provide provided
provider provides proxy pseudo psql psycopg psycopg2 publication publications publisher
qualified queries query queue quote quoted quotes raise random range rate re reached read
reading readonly receive received receiver recent recognized record records recover recovery
recursion recursive redo reduce reduced redundant refer reference referenced references refresh
refused register registered regular reindex reindexed rejected relation relations release
relfilenode remain remainder remote remove removed removing rename renamed replica replicated
replication report reported reporting represent request requested requests required reserved
reset resolution resolve resource respond responded response restart restarting restore
restricted restriction result results retried retries retrieve retry retrying return returned
returning returns revocation revoked rewrite rewritten right role roles roll root rotation
routine row rows rule rules run running sample scalar scale scan scanned scanning scans schema
schemas search searching second seconds secret security see seek segment segments select
selected selects semaphore send sending sent separate separator sequence serializable
serialization server servers service session sessions set sets setting settings shared shell
short show shows shut shutdown shutting side signal signature simple simultaneously single size
sizes skip skipping slot slots small snapshot socket sockets sort sorting source space spark
special specification specified specifies specify spelling sqlbindparameter sqlcolumns
sqlconnect sqlconnectw sqldriverconnect sqldriverconnectw sqlendtran sqlexecdirect
sqlexecdirectw sqlexecute sqlfetch sqlfetchscroll sqlgetdata sqlgettypeinfo sqlite sqlite3
sqlmoreresults sqlprepare sqlpreparew sqlsetconnectattr sqlsetconnectattrw sqlstate sqltables
ssl stack stale standby start started starting starts startup stat state statement statements
statistics status stderr stdout stop stopping storage stored str strategy streaming string
strings structure subprocess subquery subscript subscripting subscription subscriptions subtract
subtransaction subtransactions subtype superuser superusers support supported supports surrogate
symbolic sync synchronization synchronous syntax syslog system table tables tablesample
tablespace tablespaces take taken takes target tcp tds template temporary term terminate
terminated terminating text them thesaurus thrift throttled time timed timeline timeout times
timestamp title tls together token tokens total traceback transaction transactions transform
transition translate tree trigger triggered triggers true truncate truncated try tsquery
tsvector tuning tuple tuples tuplestore turns two type typed types unable unambiguously
unauthorized unavailable unconditional unexpected unexpectedly unicode unique unix unixodbc
unknown unlogged unnamed unquoted unreachable unrecognized unresolved unsafe unsupported
unterminated updatable update updated updates updating upgrade upper url usage use used user
users uses using usually vacuum vacuumed vacuuming valid value values varchar variable variables
varying verification verify version versions view views volatile wait waiting want warehouse
warning weight where whole wide window word worker workers wraparound wrapper write writer
writes writing written wrong wrote xx yield zero zone
"""
)

# After one of these (or ``<noun>:``) stands the object's name, whatever word it is.
OBJECT_NOUNS = _words(
    """
catalog collation column constraint cursor database domain extension function index module named
policy portal procedure publication relation role savepoint schema sequence subscription table
tablespace trigger user view
"""
)
