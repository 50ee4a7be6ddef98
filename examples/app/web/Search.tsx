import { useGateValue } from '@statsig/react-bindings';

export function SearchBox() {
  const dark = useGateValue('search_dark_mode');
  return <input className={dark ? 'search dark' : 'search'} />;
}
